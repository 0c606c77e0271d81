# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
"""A small CT series written with pydicom, with the tags a scanner writes for geometry and intensity."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_ct_series(
    folder: str | Path,
    hu: np.ndarray,
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.7),
    origin: tuple[float, float, float] = (-10.0, -20.0, 30.0),
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_uid: str | None = None,
    prefix: str = "IM",
) -> Path:
    """Write ``hu`` (``(slices, rows, columns)``, Hounsfield units) as one axial CT series, one file per slice.

    ``spacing`` is (slice, row, column) mm; slices go up in z (feet to head) from ``origin`` (LPS, mm). Files are
    named in reverse slice order and InstanceNumber runs backwards, so a reader must sort by position. Stored
    values are ``(hu - intercept) / slope`` as uint16 (clipped to its range), undone by RescaleSlope / RescaleIntercept.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols = hu.shape
    study, series, frame = generate_uid(), series_uid or generate_uid(), generate_uid()
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = "CT", "PHANTOM1", "Phantom^CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SeriesNumber, ds.InstanceNumber = 1, n - k
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * spacing[0]]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
        ds.PixelData = np.clip(np.round((hu[k] - intercept) / slope), 0, 65535).astype(np.uint16).tobytes()
        path = folder / f"{prefix}{n - 1 - k:04d}.dcm"
        if int(pydicom.__version__.split(".")[0]) >= 3:  # the encoding follows the transfer syntax
            ds.save_as(path, enforce_file_format=True)
        else:
            ds.is_little_endian, ds.is_implicit_VR = True, False
            ds.save_as(path, write_like_original=False)
    return folder
