"""Private numba kernels: arrays in, arrays out, no validation, no globals, no hidden RNG.

Every kernel draws its randomness from the counter-based SplitMix64 stream of
:mod:`meshstat._kernels.splitmix`: draw ``u`` of block ``b`` is
``splitmix64(keys[b], u)``, so every decision is a pure function of the block
keys (spawned from the caller's ``numpy.random.SeedSequence``) and the request
index, whatever the thread count or scheduling.
"""
