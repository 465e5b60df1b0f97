"""The Linux-kernel memory model (LKMM): herd7's answer for C litmus tests, by brute force.

``kvmcheck litmus FILE.litmus`` reads a test in herd7's C dialect (:mod:`.parser`),
runs each thread for every value its reads may return (:mod:`.unfold`,
:mod:`.primitives`), builds every candidate execution -- all rf choices, all
coherence orders per location, lock.cat's lock events (:mod:`.domains`,
:mod:`.explore`, :mod:`.candidates`) -- and
checks the LKMM's axioms on each (:mod:`.static`, :mod:`.model`), then prints
herd7's states, verdict and flags (:mod:`.report`) and, for the outcome the test
asks about, the witnessing execution or the axiom and cycle that forbid it
(:mod:`.explain`).

Translation, not interpreter.  The model is linux-kernel.cat, lock.cat and the
bell translated line by line into Python relation algebra (:mod:`.rel`), each
relation quoting the cat line it implements.  A cat interpreter would also need
herd7's built-ins (``po``, ``addr``/``data``/``ctrl`` from the C semantics,
``fencerel``, ``cross``, ``linearisations``, ``with ... from``), which is most of
the work either way; a direct translation is shorter, typed, and lets each
relation be named in a counterexample.

Which model.  The files read are those in the shared kernel copy
(``tools/memory-model/``): linux-kernel.cat (torvalds/linux eb5cc113), lock.cat
(3867a24c) and linux-kernel.def (f7c2b747, lkmmv1: lower-case annotations, fully
ordered RMWs as ``F[mb]`` around ``once`` accesses).  The shared
linux-kernel.bell (c74a7469) is older than that cat and lacks what it uses
(``Marked``, ``Plain``, ``rcu-rscs``, SRCU); the companion bell of that cat's era
is used instead, as stored at linux-surface/kernel 65c61b9d
(tools/memory-model/linux-kernel.bell): ``Marked``/``Plain``, ``carry-dep``,
nested ``rcu-rscs``, non-nesting ``srcu-rscs``.  herd7's C semantics (which events
an instruction makes, what counts as a dependency) follow herd/herdtools7
herd/CSem.ml and herd/modelUtils.ml in lkmmv1 mode.

Layering: this package imports only itself, the standard library and
``kvmcheck._engine.finding.UsageError``; only the CLI imports it.
"""
