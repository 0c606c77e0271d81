# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""brain_mri_classification's own code: datalists and cross-validation, the demo phantom, axial slicing, slice
embeddings and their cache, the DinoAtten3D losses, the split record and attention maps. Its network is
``shared.networks.dino_atten3d`` (on ``shared.networks.dinov2``)."""
