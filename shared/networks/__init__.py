# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Network definitions of every bundle in the collection, one module per network (configs name them by full path,
e.g. ``shared.networks.adaptive_swin_unetr.AdaptiveSwinUNETR``)."""
