# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""ad_multiomic_classification's own code: the cohort manifest, SNP reading (PLINK), clinical and genotype
preprocessing, subject splits, the demo cohort, transforms, metrics and outputs. Its network is
``shared.networks.acmca``."""
