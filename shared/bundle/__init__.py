"""Bundle tooling: where a bundle lives, verification against MONAI's checks, packaging as a zip.

``verify`` and ``package`` are command-line modules (``python -m shared.bundle.verify``/``.package``); they are not
imported here so that a bundle run does not pay for them.
"""

from .paths import bundle_root, safe_extract
