"""Matrix methods: truncated and randomized SVD, adaptive range finders, the streaming sketch,
low-precision low-rank (LPLR), CUR and interpolative decompositions. One family per module;
each returns a result of :mod:`lrkit.core.factorization`."""
