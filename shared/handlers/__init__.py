# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""Ignite handlers every bundle uses: checked checkpoint saving and loading, progress, the evaluation report."""
