"""The site side: the pilot, container runtimes and the evaluation contract.

Nothing here imports an optimiser library, so a site installs a light package.
"""
