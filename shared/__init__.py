# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Code of the bundle collection, laid out by owner.

- ``shared.networks``: every bundle's network definition (the collection's contract).
- ``shared.spine``, ``shared.oct``, ``shared.brain``, ``shared.multiomic``: what one method alone uses (its data,
  transforms, losses, metrics and handlers), one room per bundle.
- ``shared.atomic``, ``shared.errors``, ``shared.checks``, ``shared.inputs``, ``shared.cache``, ``shared.splits``,
  ``shared.handlers``: what every bundle uses.
- ``shared.bundle``: tooling (packaging, verification, export, the MONAI Label app, metadata requirements).

Imports run one way: common modules import nothing above them, networks import only common modules, a method room
imports common modules and networks, and the tooling imports anything. Configs name code by its full module path
(``shared.spine.datalist.segmentation_datalist``); ``import shared`` loads nothing else.
"""

__version__ = "0.1.0"
