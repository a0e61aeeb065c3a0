"""pascal-hseg: hierarchical semantic segmentation of people on Pascal-Part.

The stage scripts under ``stages/`` are thin wrappers around this package:
``settings`` (params.yaml, checked, one module per stage), ``tree`` (the class
tree as data), ``dataset`` (reading and validating the on-disk layout),
``prepare`` (decoding into resized tensor caches), ``cache`` (the caches' format),
``models`` (the smp model factory and offline weights),
``train``, ``evaluate``, ``metrics`` and ``plots``.
"""
