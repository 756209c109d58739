"""The crash harness: SIGKILL the engine everywhere a saga can be, then audit what recovery left.

``tools/crash_harness.py`` is its command line and says what it does; the
parts are here:

* :mod:`.crashbox` -- the ``crashbox`` chart and the names of its steps;
* :mod:`.processes` -- the tagged processes that ``spawn`` starts, found and killed;
* :mod:`.resources` -- the step code, which makes and removes real resources;
* :mod:`.injection` -- the crash points, and the store and observer that reach them;
* :mod:`.acks` -- the file where a child records what it fired and was told;
* :mod:`.child` -- the child that fires and dies, and the zygote that forks it;
* :mod:`.cases` -- every crash case and what the journal may say after it;
* :mod:`.launch` -- starting children, forked by a zygote or as fresh interpreters;
* :mod:`.audit` -- the oracle: the journal, outbox and resources checked after a crash;
* :mod:`.driver` -- the parent: runs the cases on workers and tallies the outcomes.
"""
