"""
Multi-omic cohort data: CSV manifest, SNP vectors, clinical preprocessing and subject splits.

Manifest layout (one row per subject, header required)::

    subject_id,mri,pet,snp,<clinical columns...>,label
    S001,mri/S001.nii.gz,pet/S001.nii.gz,genotypes/cohort.bed,72.1,F,16,29,...,CN

- ``mri`` / ``pet``: NIfTI (``.nii``, ``.nii.gz``) or Analyze (``.hdr``/``.img``) volumes, relative to the manifest.
- ``snp``: ``.npy`` vector, a CSV file (one numeric row, or a table with a ``subject_id``/``IID`` column and one
  row per subject), or a PLINK ``.bed`` (with ``.bim``/``.fam`` beside it) whose IID is the subject id.
  Codes 0/1/2; missing as NaN, -1, ``NA`` or empty (PLINK code 01).
- clinical columns: numeric or categorical; empty / ``NA`` / ``NaN`` are missing and imputed.
- ``label``: one of the class names (default ``CN``, ``MCI``, ``AD``); optional for inference.
"""

import csv
import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from shared.data.plink import plink_prefix, read_plink_bed

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SUFFIXES",
    "MISSING_TOKENS",
    "read_manifest",
    "read_snp",
    "check_image_file",
    "validate_records",
    "stratified_split",
    "ClinicalPreprocessor",
    "SNPImputer",
    "FeaturePreprocessor",
    "load_cohort",
    "cohort_datalist",
    "MultiomicPrepareBatch",
]

CLASS_NAMES = ("CN", "MCI", "AD")
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img")
MISSING_TOKENS = ("", "na", "nan", "n/a", "none", "null", "-", "?")
_ID_COLUMNS = ("subject_id", "iid")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return str(value).strip().lower() in MISSING_TOKENS


def _resolve(path: str, base: str) -> str:
    path = os.path.expanduser(str(path).strip())
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def read_manifest(
    manifest: str,
    clinical_columns: Sequence[str] = (),
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    class_names: Sequence[str] = CLASS_NAMES,
    require_label: bool = True,
) -> List[Dict[str, Any]]:
    """
    Read and check a cohort manifest.

    Returns:
        one record per subject: ``subject_id``, absolute ``mri`` / ``pet`` / ``snp`` paths for the enabled modalities,
        ``clinical_raw`` (column -> raw string) and ``label`` (class index, -1 when absent and not required).

    Raises:
        FileNotFoundError: missing manifest or modality file.
        ValueError: a required column is missing, a subject id is empty or repeated, a label is unknown,
            a modality path is empty.
    """
    if not os.path.isfile(manifest):
        raise FileNotFoundError(f"manifest '{manifest}' not found.")
    base = os.path.dirname(os.path.abspath(manifest))
    with open(manifest, newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = [{(k or "").strip(): (v if v is not None else "") for k, v in r.items()} for r in reader]
    file_mods = [m for m in ("mri", "pet", "snp") if m in modalities]
    required = ["subject_id"] + file_mods + (list(clinical_columns) if "clinical" in modalities else [])
    if require_label:
        required.append("label")
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"manifest '{manifest}': missing required column(s) {missing}; header is {header}.")
    records: List[Dict[str, Any]] = []
    seen: Dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        sid = str(row.get("subject_id", "")).strip()
        if not sid:
            raise ValueError(f"manifest '{manifest}' line {line}: empty subject_id.")
        if sid in seen:
            raise ValueError(f"manifest '{manifest}': subject_id '{sid}' appears twice (lines {seen[sid]} and {line}).")
        seen[sid] = line
        rec: Dict[str, Any] = {"subject_id": sid}
        for m in file_mods:
            value = str(row.get(m, "")).strip()
            if not value:
                raise ValueError(
                    f"manifest '{manifest}' line {line} (subject '{sid}'): empty '{m}' path; "
                    f"give the file or switch the '{m}' modality off."
                )
            path = _resolve(value, base)
            check = plink_prefix(path) + ".bed" if m == "snp" and path.lower().endswith((".bim", ".fam")) else path
            if not os.path.isfile(check):
                raise FileNotFoundError(
                    f"manifest '{manifest}' line {line} (subject '{sid}'): {m} file '{path}' not found; "
                    f"give the file or switch the '{m}' modality off."
                )
            rec[m] = path
        if "clinical" in modalities:
            rec["clinical_raw"] = {c: str(row.get(c, "")).strip() for c in clinical_columns}
        raw_label = str(row.get("label", "")).strip()
        if raw_label:
            names = [str(c) for c in class_names]
            upper = [c.upper() for c in names]
            if raw_label.upper() not in upper:
                raise ValueError(
                    f"manifest '{manifest}' line {line} (subject '{sid}'): label '{raw_label}' is not one of {names}."
                )
            rec["label"] = upper.index(raw_label.upper())
        elif require_label:
            raise ValueError(f"manifest '{manifest}' line {line} (subject '{sid}'): empty label.")
        else:
            rec["label"] = -1
        records.append(rec)
    if not records:
        raise ValueError(f"manifest '{manifest}' has a header but no subject rows.")
    return records


def _parse_snp_tokens(tokens: Sequence[str], where: str) -> np.ndarray:
    out = np.empty(len(tokens), dtype=np.float32)
    for j, t in enumerate(tokens):
        if _is_missing(t):
            out[j] = np.nan
            continue
        try:
            out[j] = float(t)
        except ValueError:
            raise ValueError(f"{where}: SNP value '{t}' at position {j} is not a number.") from None
    return out


def read_snp(source: str, subject_id: str, expected_length: Optional[int] = None) -> np.ndarray:
    """
    Read one subject's SNP dosage vector.

    Args:
        source: ``.npy``, CSV/TSV/TXT or PLINK ``.bed`` (``.bim``/``.fam``/prefix) path.
        subject_id: the subject (row id in a CSV table, IID in PLINK).
        expected_length: required vector length.

    Returns:
        ``(n_snps,)`` float32 in {0, 1, 2} with NaN for missing.

    Raises:
        ValueError: wrong length, codes other than 0/1/2/missing, unreadable rows, unknown subject.
    """
    low = source.lower()
    where = f"SNP file '{source}' (subject '{subject_id}')"
    if low.endswith(".npy"):
        vec = np.load(source, allow_pickle=False)
        if vec.dtype.kind not in "biuf":
            raise ValueError(f"{where}: expected a numeric array, got dtype {vec.dtype}.")
        vec = np.asarray(vec, dtype=np.float32).reshape(-1) if vec.ndim == 2 and 1 in vec.shape else vec
        if vec.ndim != 1:
            raise ValueError(f"{where}: expected a 1-D vector, got shape {tuple(vec.shape)}.")
        vec = vec.astype(np.float32)
    elif low.endswith((".csv", ".tsv", ".txt")):
        vec = _read_snp_csv(source, subject_id, where)
    elif low.endswith((".bed", ".bim", ".fam")) or os.path.isfile(source + ".bed"):
        bed = read_plink_bed(source)
        if subject_id not in bed:
            raise ValueError(f"{where}: subject id not found among the IIDs of '{bed.prefix}.fam'.")
        vec = bed.genotypes(subject_id)
    else:
        raise ValueError(f"{where}: unsupported SNP file type; use .npy, .csv/.tsv/.txt or PLINK .bed/.bim/.fam.")
    vec = np.where(vec < 0, np.nan, vec).astype(np.float32)  # -1 is the usual missing code
    if expected_length is not None and vec.shape[0] != expected_length:
        raise ValueError(f"{where}: {vec.shape[0]} SNPs, expected {expected_length} (config snp_features).")
    finite = vec[np.isfinite(vec)]
    bad = finite[~np.isin(finite, (0.0, 1.0, 2.0))]
    if bad.size:
        raise ValueError(f"{where}: SNP codes must be 0, 1, 2 or missing, found {sorted(set(bad.tolist()))[:5]}.")
    return vec


def _read_snp_csv(source: str, subject_id: str, where: str) -> np.ndarray:
    delim = "\t" if source.lower().endswith(".tsv") else ","
    with open(source, newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=delim) if any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{where}: the file is empty.")
    first = [c.strip() for c in rows[0]]
    id_col = next((i for i, c in enumerate(first) if c.lower() in _ID_COLUMNS), None)
    if id_col is not None:  # genotype table: header with an id column, one row per subject
        for r in rows[1:]:
            if r[id_col].strip() == subject_id:
                return _parse_snp_tokens([c for i, c in enumerate(r) if i != id_col], where)
        raise ValueError(f"{where}: no row with {first[id_col]} == '{subject_id}'.")
    numeric = all(_is_missing(c) or _is_number(c) for c in first)
    data = rows if numeric or len(rows) == 1 else rows[1:]  # optional header line of SNP names
    if len(data) != 1:
        raise ValueError(f"{where}: expected one row of SNP values (or a table with a subject_id column).")
    return _parse_snp_tokens(data[0], where)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_image_file(path: str, where: str = "") -> Tuple[int, ...]:
    """Read the header only and check the volume is 3D (a trailing singleton 4th axis is accepted)."""
    import nibabel as nib

    if not path.lower().endswith(IMAGE_SUFFIXES):
        raise ValueError(f"{where}image '{path}': unsupported type; use NIfTI (.nii/.nii.gz) or Analyze (.hdr/.img).")
    try:
        shape = tuple(int(s) for s in nib.load(path).shape)
    except Exception as e:  # nibabel raises several types for corrupt headers
        raise ValueError(f"{where}image '{path}' cannot be read: {e}") from e
    if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
        raise ValueError(f"{where}image '{path}' has rank {len(shape)} (shape {shape}); a 3D volume is required.")
    return shape


def validate_records(
    records: Sequence[Mapping[str, Any]],
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    snp_features: Optional[int] = None,
    clinical: Optional["ClinicalPreprocessor"] = None,
) -> None:
    """Check every subject before any compute: image headers and rank, SNP length and codes, clinical parsing."""
    for rec in records:
        where = f"subject '{rec['subject_id']}': "
        for m in ("mri", "pet"):
            if m in modalities:
                check_image_file(rec[m], where)
        if "snp" in modalities:
            read_snp(rec["snp"], rec["subject_id"], snp_features)
        if "clinical" in modalities and clinical is not None:
            clinical.parse(rec["clinical_raw"], where)


def stratified_split(
    records: Sequence[Mapping[str, Any]], val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0
) -> Dict[str, List[Dict[str, Any]]]:
    """
    Split subjects into ``training`` / ``validation`` / ``test`` per class with a seeded permutation.

    Every class with enough subjects contributes ``round(n * fraction)`` (at least one) subjects to each held-out
    split; the result depends only on the subject ids, labels and seed, not on the manifest row order.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction and test_fraction must be in [0, 1) with sum < 1, got {val_fraction}, " f"{test_fraction}."
        )
    rng = np.random.default_rng(seed)
    out: Dict[str, List[Dict[str, Any]]] = {"training": [], "validation": [], "test": []}
    for label in sorted({int(r["label"]) for r in records}):
        group = sorted((dict(r) for r in records if int(r["label"]) == label), key=lambda r: r["subject_id"])
        group = [group[i] for i in rng.permutation(len(group))]
        n = len(group)
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and n >= 3 else 0
        n_test = max(1, round(n * test_fraction)) if test_fraction > 0 and n - n_val >= 3 else 0
        out["validation"] += group[:n_val]
        out["test"] += group[n_val : n_val + n_test]
        out["training"] += group[n_val + n_test :]
    for v in out.values():
        v.sort(key=lambda r: r["subject_id"])
    return out


class ClinicalPreprocessor:
    """
    Clinical-variable encoding fitted on the training split only.

    Numeric columns: missing -> training mean, then standardised with the training mean/std.
    Categorical columns: missing -> training mode; two levels -> one 0/1 column, more -> one-hot over the
    training levels (sorted). A level never seen in training is an error.

    Args:
        numeric: numeric column names.
        categorical: categorical column names.
    """

    def __init__(self, numeric: Sequence[str] = (), categorical: Sequence[str] = ()) -> None:
        self.numeric = [str(c) for c in numeric]
        self.categorical = [str(c) for c in categorical]
        overlap = set(self.numeric) & set(self.categorical)
        if overlap:
            raise ValueError(f"clinical columns {sorted(overlap)} are listed as both numeric and categorical.")
        self.mean: Dict[str, float] = {}
        self.std: Dict[str, float] = {}
        self.levels: Dict[str, List[str]] = {}
        self.mode: Dict[str, str] = {}
        self.fitted = False

    @property
    def columns(self) -> List[str]:
        return self.numeric + self.categorical

    @property
    def out_features(self) -> int:
        if not self.fitted:
            raise RuntimeError("ClinicalPreprocessor is not fitted.")
        return len(self.numeric) + sum(1 if len(v) <= 2 else len(v) for v in self.levels.values())

    @property
    def feature_names(self) -> List[str]:
        names = list(self.numeric)
        for c in self.categorical:
            lv = self.levels[c]
            names += [f"{c}={lv[-1]}"] if len(lv) <= 2 else [f"{c}={v}" for v in lv]
        return names

    def parse(self, raw: Mapping[str, Any], where: str = "") -> Dict[str, Any]:
        """Raw strings -> floats (NaN missing) / category strings (None missing); unparsable numbers are errors."""
        out: Dict[str, Any] = {}
        for c in self.numeric:
            if c not in raw:
                raise ValueError(f"{where}clinical column '{c}' is missing.")
            v = raw[c]
            if _is_missing(v):
                out[c] = float("nan")
                continue
            try:
                out[c] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{where}clinical column '{c}': value '{v}' is not a number.") from None
            if not math.isfinite(out[c]):
                raise ValueError(f"{where}clinical column '{c}': value '{v}' is not finite.")
        for c in self.categorical:
            if c not in raw:
                raise ValueError(f"{where}clinical column '{c}' is missing.")
            v = raw[c]
            out[c] = None if _is_missing(v) else str(v).strip()
        return out

    def fit(self, raws: Sequence[Mapping[str, Any]]) -> "ClinicalPreprocessor":
        if not raws:
            raise ValueError("cannot fit the clinical preprocessing on an empty training split.")
        parsed = [self.parse(r, f"training subject {i}: ") for i, r in enumerate(raws)]
        for c in self.numeric:
            vals = np.array([p[c] for p in parsed], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            if vals.size == 0:
                raise ValueError(f"clinical column '{c}' has no value in the training split.")
            self.mean[c] = float(vals.mean())
            std = float(vals.std())
            self.std[c] = std if std > 1e-8 else 1.0
        for c in self.categorical:
            vals = [p[c] for p in parsed if p[c] is not None]
            if not vals:
                raise ValueError(f"clinical column '{c}' has no value in the training split.")
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
        out: List[float] = []
        for c in self.numeric:
            v = p[c] if math.isfinite(p[c]) else self.mean[c]
            out.append((v - self.mean[c]) / self.std[c])
        for c in self.categorical:
            v = p[c] if p[c] is not None else self.mode[c]
            lv = self.levels[c]
            if v not in lv:
                raise ValueError(f"{where}clinical column '{c}': level '{v}' was not seen in training {lv}.")
            out += [float(v == lv[-1])] if len(lv) <= 2 else [float(v == x) for x in lv]
        return np.asarray(out, dtype=np.float32)

    def state_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in ("numeric", "categorical", "mean", "std", "levels", "mode", "fitted")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k in ("numeric", "categorical", "mean", "std", "levels", "mode", "fitted"):
            setattr(self, k, state[k])


class SNPImputer:
    """Per-locus mean dosage of the training split, used to fill missing genotypes."""

    def __init__(self, n_snps: int) -> None:
        self.n_snps = int(n_snps)
        self.mean: Optional[np.ndarray] = None

    def fit(self, vectors: Sequence[np.ndarray]) -> "SNPImputer":
        if not len(vectors):
            raise ValueError("cannot fit the SNP imputation on an empty training split.")
        stack = np.stack([np.asarray(v, np.float64) for v in vectors])
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(np.where(np.isfinite(stack), stack, np.nan), axis=0) if stack.size else stack
        self.mean = np.nan_to_num(mean, nan=0.0).astype(np.float32)  # loci missing in all training subjects -> 0
        return self

    def __call__(self, vec: np.ndarray) -> np.ndarray:
        if self.mean is None:
            raise RuntimeError("SNPImputer is not fitted.")
        v = np.asarray(vec, np.float32)
        return np.where(np.isfinite(v), v, self.mean).astype(np.float32)

    def state_dict(self) -> Dict[str, Any]:
        return {"n_snps": self.n_snps, "mean": None if self.mean is None else [round(float(x), 6) for x in self.mean]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.n_snps = int(state["n_snps"])
        self.mean = None if state["mean"] is None else np.asarray(state["mean"], np.float32)


class FeaturePreprocessor:
    """
    The non-imaging preprocessing of a bundle: clinical encoding and SNP imputation, fitted on the training split,
    saved as JSON beside the weights and loaded for evaluation and inference.

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
        clinical_features: Optional[int] = None,
        modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    ) -> None:
        self.modalities = [str(m) for m in modalities]
        self.clinical = ClinicalPreprocessor(clinical_numeric, clinical_categorical)
        self.snp = SNPImputer(snp_features)
        self.clinical_features = clinical_features

    def fit(self, records: Sequence[Mapping[str, Any]], save_path: Optional[str] = None) -> "FeaturePreprocessor":
        """Fit on training records (as returned by :func:`read_manifest`); optionally save to ``save_path``."""
        if "clinical" in self.modalities:
            self.clinical.fit([r["clinical_raw"] for r in records])
            if self.clinical_features is not None and self.clinical.out_features != self.clinical_features:
                raise ValueError(
                    f"the clinical encoding fitted on the training split has {self.clinical.out_features} features "
                    f"{self.clinical.feature_names}, but the network expects clinical_features="
                    f"{self.clinical_features}; set clinical_features to {self.clinical.out_features}."
                )
        if "snp" in self.modalities:
            self.snp.fit([read_snp(r["snp"], r["subject_id"], self.snp.n_snps) for r in records])
        if save_path:
            self.save(save_path)
        return self

    def encode(self, record: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        """Record -> ``{"snp": (n_snps,), "clinical": (out_features,)}`` for the enabled modalities."""
        where = f"subject '{record.get('subject_id', '?')}': "
        out: Dict[str, np.ndarray] = {}
        if "snp" in self.modalities:
            out["snp"] = self.snp(read_snp(record["snp"], record["subject_id"], self.snp.n_snps))
        if "clinical" in self.modalities:
            out["clinical"] = self.clinical(record["clinical_raw"], where)
        return out

    def state_dict(self) -> Dict[str, Any]:
        return {
            "format": "multiomic-preprocessing/1",
            "modalities": self.modalities,
            "clinical_features": self.clinical_features,
            "clinical": self.clinical.state_dict(),
            "snp": self.snp.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != "multiomic-preprocessing/1":
            raise ValueError(f"unknown preprocessing format {state.get('format')!r}.")
        self.modalities = list(state["modalities"])
        self.clinical_features = state["clinical_features"]
        self.clinical.load_state_dict(state["clinical"])
        self.snp.load_state_dict(state["snp"])

    def save(self, path: str) -> str:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state_dict(), f)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written file beside the weights
        return path

    @classmethod
    def load(cls, path: str, modalities: Optional[Sequence[str]] = None) -> "FeaturePreprocessor":
        """Load a saved preprocessing; ``modalities`` (when given) must be covered by the saved one."""
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"preprocessing file '{path}' not found: train the bundle first (it is written " "beside the weights)."
            )
        with open(path) as f:
            state = json.load(f)
        obj = cls()
        obj.load_state_dict(state)
        if modalities is not None:
            lacking = [m for m in ("snp", "clinical") if m in modalities and m not in obj.modalities]
            if lacking:
                raise ValueError(f"preprocessing '{path}' was fitted without modalities {lacking}.")
            obj.modalities = [m for m in obj.modalities if m in modalities]
        return obj


def load_cohort(
    dataset_dir: str,
    manifest: str = "manifest.csv",
    clinical_columns: Sequence[str] = (),
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    class_names: Sequence[str] = CLASS_NAMES,
    require_label: bool = True,
) -> List[Dict[str, Any]]:
    """Read ``<dataset_dir>/<manifest>`` with a clear error when the folder is missing, empty or lacks it."""
    layout = "expected <dataset_dir>/" + manifest + " with columns subject_id, mri, pet, snp, <clinical>, label"
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError(f"dataset_dir '{dataset_dir}' does not exist ({layout}).")
    if not os.listdir(dataset_dir):
        raise FileNotFoundError(f"dataset_dir '{dataset_dir}' is empty ({layout}).")
    path = manifest if os.path.isabs(manifest) else os.path.join(dataset_dir, manifest)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset_dir '{dataset_dir}' has no manifest '{path}' ({layout}).")
    return read_manifest(path, clinical_columns, modalities, class_names, require_label)


def cohort_datalist(
    dataset_dir: str,
    manifest: str = "manifest.csv",
    clinical_numeric: Sequence[str] = (),
    clinical_categorical: Sequence[str] = (),
    modalities: Sequence[str] = ("mri", "pet", "snp", "clinical"),
    class_names: Sequence[str] = CLASS_NAMES,
    snp_features: Optional[int] = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    require_label: bool = True,
    demo_dir: Optional[str] = None,
    demo_kwargs: Optional[Mapping[str, Any]] = None,
) -> Dict[str, List[Dict[str, Any]]]:
    """
    A bundle's datalist: write the synthetic demo cohort when ``dataset_dir`` is the (empty) ``demo_dir``, read and
    check the manifest and every subject's files before any compute, then split by subject.

    Returns:
        ``{"training", "validation", "test", "all"}`` lists of records (``all`` in manifest order). Without
        ``require_label`` (inference) every subject is in ``all`` and the splits are empty.
    """
    if demo_dir is not None:
        from shared.data.ad_cohort import prepare_dataset

        prepare_dataset(dataset_dir, demo_dir, **dict(demo_kwargs or {}))
    columns = list(clinical_numeric) + list(clinical_categorical)
    records = load_cohort(dataset_dir, manifest, columns, modalities, class_names, require_label)
    validate_records(records, modalities, snp_features, ClinicalPreprocessor(clinical_numeric, clinical_categorical))
    if not require_label:
        return {"training": [], "validation": [], "test": [], "all": records}
    out: Dict[str, List[Dict[str, Any]]] = dict(stratified_split(records, val_fraction, test_fraction, seed))
    out["all"] = records
    return out


class MultiomicPrepareBatch:
    """
    ``prepare_batch`` for MONAI engines: ``image`` (when present) is the network input, ``label`` the target and the
    enabled non-imaging vectors go in as keyword arguments (``snp=``, ``clinical=``).

    Args:
        extra_keys: batch keys passed as keyword arguments of the same name.
    """

    def __init__(self, extra_keys: Sequence[str] = ("snp", "clinical")) -> None:
        self.extra_keys = [str(k) for k in extra_keys]

    def __call__(
        self,
        batchdata: Dict[str, Any],
        device: Union[str, torch.device, None] = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], tuple, Dict[str, torch.Tensor]]:
        def _to(x: Any) -> Any:
            return x.to(device=device, non_blocking=non_blocking, **kwargs) if isinstance(x, torch.Tensor) else x

        image = _to(batchdata["image"]) if "image" in batchdata else None
        label = _to(batchdata["label"]) if "label" in batchdata else None
        extra = {k: _to(batchdata[k]) for k in self.extra_keys if k in batchdata}
        return image, label, (), extra
