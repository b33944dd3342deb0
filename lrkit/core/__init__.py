"""The core every method stands on: the result protocol (:mod:`.factorization`), input checks,
random generators, linear-algebra helpers, quantizers with bit accounting, metrics, rank
choosers and synthetic test matrices. Nothing here imports a method module."""
