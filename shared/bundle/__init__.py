# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Bundle tooling: packaging as a zip, verification against MONAI's checks, ONNX / TorchScript export, the MONAI
Label app builder and the metadata's package requirements (``python -m shared.bundle.verify`` / ``.package`` /
``.export`` / ``.requirements``)."""
