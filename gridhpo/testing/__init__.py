"""The contract suites of gridhpo's pluggable parts, for pytest, importable by a third-party plug-in.

Each module holds one ``...Contract`` class whose test methods use one fixture the plug-in's test
module provides (a factory of the part, or the part itself); subclass it under a ``Test`` name
and define that fixture in the subclass, parametrized over the implementations to check:

====================  ====================  ===============================================
module                class                 fixture the subclass defines
====================  ====================  ===============================================
``optimisers``        OptimiserContract     ``optimiser_case`` -> OptimiserCase
``optimisers``        MultiObjectiveContract ``optimiser_case`` -> OptimiserCase (a backend
                                            declaring ``multi_objective``)
``schedulers``        SchedulerContract     ``scheduler_case`` -> SchedulerCase
``stores``            StoreContract         ``store`` -> ObjectStore (empty)
``runtimes``          RuntimeContract       ``runtime_case`` -> RuntimeCase
``runtimes``          CommandRuntimeContract ``command_runtime`` -> (Runtime, image or None)
``queues``            QueueContract         ``url`` -> a broker URL (empty queues)
``backends``          BackendContract       ``pilot_backend`` -> PilotBackend
====================  ====================  ===============================================

This package imports pytest; ``import gridhpo`` never imports it (docs/architecture.md).
"""
from __future__ import annotations
