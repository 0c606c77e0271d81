# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The fitted non-imaging preprocessing of ad_multiomic_classification: clinical encoding (numeric scaling,
categorical one-hot, imputation), SNP imputation, and their file, fitted on the training subjects only."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shared.atomic import write_json
from shared.errors import InputError, MissingInputError
from shared.inputs import read_json
from shared.multiomic.manifest import is_missing, row_of
from shared.multiomic.snps import read_snp

__all__ = [
    "ClinicalPreprocessor",
    "SNPImputer",
    "FeaturePreprocessor",
    "check_encodable",
    "check_resumed_preprocessing",
]


class ClinicalPreprocessor:
    """
    Clinical-variable encoding fitted on the training split only.

    Numeric columns: missing -> training mean, then standardised with the training mean/std.
    Categorical columns: missing -> training mode; two levels -> one 0/1 column, more -> one-hot over the
    training levels (sorted). A level never seen in training is an error.

    Args:
        numeric: numeric column names.
        categorical: categorical column names.
        ranges: optional valid ``[low, high]`` per numeric column (inclusive): a value outside is an input error
            (a missing-value code such as ADNI's -4 must not be read as a score). Checked only, not saved.
    """

    def __init__(
        self,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        ranges: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.numeric = [str(c) for c in numeric]
        self.categorical = [str(c) for c in categorical]
        overlap = set(self.numeric) & set(self.categorical)
        if overlap:
            raise InputError(
                f"config ids clinical_numeric and clinical_categorical both list {sorted(overlap)}: a column is "
                "either numeric or categorical."
            )
        self.ranges = {str(k): (float(v[0]), float(v[1])) for k, v in dict(ranges or {}).items()}
        self.mean: dict[str, float] = {}
        self.std: dict[str, float] = {}
        self.levels: dict[str, list[str]] = {}
        self.mode: dict[str, str] = {}
        self.fitted = False

    @property
    def columns(self) -> list[str]:
        return self.numeric + self.categorical

    @property
    def out_features(self) -> int:
        if not self.fitted:
            raise RuntimeError("ClinicalPreprocessor is not fitted.")
        return len(self.numeric) + sum(1 if len(v) <= 2 else len(v) for v in self.levels.values())

    @property
    def feature_names(self) -> list[str]:
        names = list(self.numeric)
        for c in self.categorical:
            lv = self.levels[c]
            names += [f"{c}={lv[-1]}"] if len(lv) <= 2 else [f"{c}={v}" for v in lv]
        return names

    def parse(self, raw: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Raw strings -> floats (NaN missing) / category strings (None missing); unparsable, non-finite and
        out-of-range numbers are errors."""
        out: dict[str, Any] = {}
        for c in self.numeric:
            if c not in raw:
                raise InputError(f"{where}clinical column '{c}' is missing.")
            v = raw[c]
            if is_missing(v):
                out[c] = float("nan")
                continue
            try:
                out[c] = float(v)
            except (TypeError, ValueError):
                raise InputError(f"{where}clinical column '{c}': value '{v}' is not a number.") from None
            if not math.isfinite(out[c]):
                raise InputError(f"{where}clinical column '{c}': value '{v}' is not finite.")
            if c in self.ranges and not self.ranges[c][0] <= out[c] <= self.ranges[c][1]:
                lo, hi = self.ranges[c]
                raise InputError(
                    f"{where}clinical column '{c}' is {v}, outside its valid range [{lo:g}, {hi:g}] (config "
                    "clinical_ranges): leave a missing value empty or NA rather than coding it as a number such as -4."
                )
        for c in self.categorical:
            if c not in raw:
                raise InputError(f"{where}clinical column '{c}' is missing.")
            v = raw[c]
            out[c] = None if is_missing(v) else str(v).strip()
        return out

    def fit(self, raws: Sequence[Mapping[str, Any]]) -> "ClinicalPreprocessor":
        if not raws:
            raise InputError("The training split is empty: the clinical preprocessing cannot be fitted.")
        parsed = [self.parse(r, f"training subject {i}: ") for i, r in enumerate(raws)]
        for c in self.numeric:
            vals = np.array([p[c] for p in parsed], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            if vals.size == 0:
                raise InputError(f"clinical column '{c}' has no value in the training split: fill it or drop it.")
            self.mean[c] = float(vals.mean())
            std = float(vals.std())
            self.std[c] = std if std > 1e-8 else 1.0
        for c in self.categorical:
            vals = [p[c] for p in parsed if p[c] is not None]
            if not vals:
                raise InputError(f"clinical column '{c}' has no value in the training split: fill it or drop it.")
            self.levels[c] = sorted(set(vals))
            counts = {v: vals.count(v) for v in self.levels[c]}
            self.mode[c] = max(self.levels[c], key=lambda v: (counts[v], v))
        self.fitted = True
        return self

    def __call__(self, raw: Mapping[str, Any], where: str = "") -> np.ndarray:
        """Raw row -> encoded ``(out_features,)`` float32."""
        if not self.fitted:
            raise RuntimeError("ClinicalPreprocessor is not fitted.")
        p = self.parse(raw, where)
        out: list[float] = []
        for c in self.numeric:
            v = p[c] if math.isfinite(p[c]) else self.mean[c]
            out.append((v - self.mean[c]) / self.std[c])
        for c in self.categorical:
            v = p[c] if p[c] is not None else self.mode[c]
            lv = self.levels[c]
            if v not in lv:
                raise InputError(
                    f"{where}clinical column '{c}' has level '{v}', never seen in the training split {lv}: the "
                    "encoding has no column for it; recode it to a training level or leave it empty (missing)."
                )
            out += [float(v == lv[-1])] if len(lv) <= 2 else [float(v == x) for x in lv]
        return np.asarray(out, dtype=np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("numeric", "categorical", "mean", "std", "levels", "mode", "fitted")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k in ("numeric", "categorical", "mean", "std", "levels", "mode", "fitted"):
            setattr(self, k, state[k])


class SNPImputer:
    """Per-locus mean dosage of the training split, used to fill missing genotypes."""

    def __init__(self, n_snps: int) -> None:
        self.n_snps = int(n_snps)
        self.mean: np.ndarray | None = None

    def fit(self, vectors: Sequence[np.ndarray]) -> "SNPImputer":
        if not len(vectors):
            raise InputError("The training split is empty: the SNP imputation cannot be fitted.")
        stack = np.stack([np.asarray(v, np.float64) for v in vectors])
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # loci missing in every training subject
            mean = np.nanmean(np.where(np.isfinite(stack), stack, np.nan), axis=0) if stack.size else stack
        self.mean = np.nan_to_num(mean, nan=0.0).astype(np.float32)  # loci missing in all training subjects -> 0
        return self

    def __call__(self, vec: np.ndarray) -> np.ndarray:
        if self.mean is None:
            raise RuntimeError("SNPImputer is not fitted.")
        v = np.asarray(vec, np.float32)
        return np.where(np.isfinite(v), v, self.mean).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"n_snps": self.n_snps, "mean": None if self.mean is None else [round(float(x), 6) for x in self.mean]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.n_snps = int(state["n_snps"])
        self.mean = None if state["mean"] is None else np.asarray(state["mean"], np.float32)


_FORMAT = "multiomic-preprocessing/2"


class FeaturePreprocessor:
    """
    The non-imaging preprocessing of a bundle: clinical encoding and SNP imputation, fitted on the training split,
    saved as JSON beside the weights (with the subject ids of the training and validation splits, so that an
    evaluation can prove its subjects were held out) and loaded for evaluation and inference.

    Args:
        clinical_numeric: numeric clinical columns.
        clinical_categorical: categorical clinical columns.
        snp_features: SNP vector length.
        clinical_features: the network's clinical input width; fitting checks the encoding produces it.
        modalities: enabled modalities.
    """

    def __init__(
        self,
        clinical_numeric: Sequence[str] = (),
        clinical_categorical: Sequence[str] = (),
        snp_features: int = 15000,
        clinical_features: int | None = None,
        modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    ) -> None:
        self.modalities = [str(m) for m in modalities]
        self.clinical = ClinicalPreprocessor(clinical_numeric, clinical_categorical)
        self.snp = SNPImputer(snp_features)
        self.clinical_features = clinical_features
        self.subjects: dict[str, list[str]] = {"training": [], "validation": []}
        self.path: str | None = None  # the file it was loaded from

    def fit(
        self,
        records: Sequence[Mapping[str, Any]],
        save_path: str | None = None,
        validation: Sequence[Mapping[str, Any]] = (),
    ) -> "FeaturePreprocessor":
        """
        Fit on the training records (as returned by :func:`read_manifest`) and record their subject ids and those
        of ``validation``, whose encoding is then checked (a category never seen in training stops here, before
        any compute). ``save_path``: also write the result there.
        """
        if "clinical" in self.modalities:
            self.clinical.fit([r["clinical_raw"] for r in records])
            if self.clinical_features is not None and self.clinical.out_features != self.clinical_features:
                raise InputError(
                    f"config id 'clinical_features' is {self.clinical_features}, but the clinical encoding fitted on "
                    f"the training split has {self.clinical.out_features} features {self.clinical.feature_names}: "
                    f"set --clinical_features {self.clinical.out_features}."
                )
        if "snp" in self.modalities:
            self.snp.fit([read_snp(r["snp"], r["subject_id"], self.snp.n_snps) for r in records])
        self.subjects = {
            "training": sorted(str(r["subject_id"]) for r in records),
            "validation": sorted(str(r["subject_id"]) for r in validation),
        }
        check_encodable(validation, self)
        if save_path:
            self.save(save_path)
        return self

    def encode(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Record -> ``{"snp": (n_snps,), "clinical": (out_features,)}`` for the enabled modalities."""
        where = row_of(record) + ": "
        out: dict[str, np.ndarray] = {}
        if "snp" in self.modalities:
            out["snp"] = self.snp(read_snp(record["snp"], record["subject_id"], self.snp.n_snps))
        if "clinical" in self.modalities:
            out["clinical"] = self.clinical(record["clinical_raw"], where)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "modalities": self.modalities,
            "clinical_features": self.clinical_features,
            "clinical": self.clinical.state_dict(),
            "snp": self.snp.state_dict(),
            "subjects": self.subjects,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.modalities = list(state["modalities"])
        self.clinical_features = state["clinical_features"]
        self.clinical.load_state_dict(state["clinical"])
        self.snp.load_state_dict(state["snp"])
        self.subjects = {k: list(state["subjects"][k]) for k in ("training", "validation")}

    def save(self, path: str) -> str:
        """Write the state as JSON, atomically (never a half-written file beside the weights)."""
        write_json(path, self.state_dict(), indent=None)
        return path

    @classmethod
    def load(
        cls,
        path: str,
        modalities: Sequence[str] | None = None,
        clinical_numeric: Sequence[str] | None = None,
        clinical_categorical: Sequence[str] | None = None,
        snp_features: int | None = None,
        clinical_features: int | None = None,
    ) -> "FeaturePreprocessor":
        """
        Load a saved preprocessing and check it fits this config: ``modalities`` (when given) must be covered by the
        saved ones, and the clinical columns, ``snp_features`` and ``clinical_features`` (when given) must be those
        it was fitted with.
        """
        if not os.path.isfile(path):
            raise MissingInputError(
                f"The fitted preprocessing {path} does not exist: training writes it beside model.pt; train first, "
                "or point --ckpt_dir (or --preprocessing_file) at the folder of a trained model."
            )
        state = read_json(path, what="fitted preprocessing")
        obj = cls()
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise InputError(
                f"The fitted preprocessing {path} is not a '{_FORMAT}' file (found {found!r}): it was not written by "
                "this version of the bundle; retrain, or use the bundle version that wrote it."
            )
        try:
            obj.load_state_dict(state)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(
                f"The fitted preprocessing {path} is incomplete or damaged (bad entry {e}): retrain."
            ) from e
        obj.path = path
        if modalities is not None:
            lacking = [m for m in ("snp", "clinical") if m in modalities and m not in obj.modalities]
            if lacking:
                raise InputError(
                    f"The fitted preprocessing {path} was fitted without modalities {lacking}, which this config "
                    f"enables: use the modalities the model was trained with ({obj.modalities})."
                )
            obj.modalities = [m for m in obj.modalities if m in modalities]
        given = {  # config value, saved value, the modality it belongs to
            "clinical_numeric": (clinical_numeric, obj.clinical.numeric, "clinical"),
            "clinical_categorical": (clinical_categorical, obj.clinical.categorical, "clinical"),
            "clinical_features": (clinical_features, obj.clinical_features, "clinical"),
            "snp_features": (snp_features, obj.snp.n_snps, "snp"),
        }
        for key, (value, saved, modality) in given.items():
            value = list(value) if isinstance(value, (list, tuple)) else value
            if value is not None and modality in obj.modalities and value != saved:
                raise InputError(
                    f"The fitted preprocessing {path} was made with {key} {saved}, this config has {value}: use the "
                    "settings the model was trained with (e.g. the same --clinical_set), or the --ckpt_dir of a model "
                    "trained with these."
                )
        return obj


def check_encodable(records: Sequence[Mapping[str, Any]], preprocessing: FeaturePreprocessor) -> list[dict[str, Any]]:
    """Encode every record's clinical row once (cheap) so that a category never seen in training stops the run
    before any compute, naming the manifest line; returns the records."""
    if "clinical" in preprocessing.modalities:
        for rec in records:
            preprocessing.clinical(rec["clinical_raw"], row_of(rec) + ": ")
    return [dict(r) for r in records]


def check_resumed_preprocessing(
    preprocessing: FeaturePreprocessor,
    path: str,
    ckpt_dir: str,
    resume: bool = True,
    resume_file: str = "checkpoint_last.pt",
) -> None:
    """A resumed run refits the preprocessing on its training split: it must be the one the checkpoint was trained
    with (the saved ``path``), or the resumed model would pair with another split and encoding."""
    if not (resume and os.path.isfile(os.path.join(ckpt_dir, resume_file)) and os.path.isfile(path)):
        return
    saved = read_json(path, what="fitted preprocessing")
    now = json.loads(json.dumps(preprocessing.state_dict()))  # the same JSON types as the saved file
    if saved != now:
        parts = [k for k in now if not isinstance(saved, Mapping) or saved.get(k) != now[k]]
        raise InputError(
            f"This run would resume {os.path.join(ckpt_dir, resume_file)}, but its training split or clinical / SNP "
            f"preprocessing differs from the one the checkpoint was trained with ({path}: {', '.join(parts)} differ): "
            "resume with the same manifest, seed, fractions and clinical settings, or start a new run in another "
            "--ckpt_dir (or --overwrite true)."
        )
