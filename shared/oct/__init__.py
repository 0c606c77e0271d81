# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""glaucoma_oct_classification's own code: OCT datalists and volume reading, the demo phantom, transforms, the
stage-2 consistency loss, Grad-CAM / CARE explanation, metrics, checkpoints, outputs and the training record. Its
network is ``shared.networks.ai_cnet3d``."""
