"""pascal-hseg: hierarchical semantic segmentation of people on Pascal-Part.

The stage scripts under ``stages/`` are thin wrappers around this package:
``params`` (validated configuration), ``tree`` (the class tree as data),
``dataset`` (reading and validating the on-disk layout), ``prepare`` (resized
tensor caches), ``models`` (the smp model factory and offline weights),
``train``, ``evaluate``, ``metrics`` and ``plots``.
"""
