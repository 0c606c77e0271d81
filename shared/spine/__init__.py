# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""spine_seg's own code: datalists and modality checks, dataset readers, the demo phantom, spacing, metrics and
report, overlay figures, the atomic NIfTI writer. Its network is ``shared.networks.adaptive_swin_unetr``."""
