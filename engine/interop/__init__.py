"""Bridges to other state-machine libraries.

:mod:`engine.interop.pytransitions` imports and exports pytransitions
machine definitions and runs a chart on pytransitions' HierarchicalMachine,
the reference interpreter of the differential tests. It needs the
``transitions`` package (a test dependency of chartd).
"""
