#!/usr/bin/env python3
"""Test helper of tests/dicom.rs, with pydicom (PyPI): a reader independent of
dicom-rs, which medanon uses.

    ct.py make  < objects.json   writes synthetic CT slices (512x512, 16-bit)
    ct.py check TABLE < pairs.json  reads medanon's output back, prints JSON

`make` takes a list of {"path", "patient_id", "name", "charset", "study_uid",
"series_uid", "sop_uid", "study_date", "burned_in"}; charset "ir87" writes the
name in ISO 2022 IR 87 (kanji, hiragana), "ir13" in ISO 2022 IR 13 with IR 87
(half-width katakana and kanji), as PS3.5 Annex H does.

`check` takes a list of {"in", "out"} and prints, for each pair, what the test
asserts: whether pydicom opens the output without force, the attributes of the
profile (TABLE, crates/medanon-dicom/data/ps3.15-e1-1.tsv) that kept their original
value, private attributes left, and the identifiers and dates of the output.
"""
import json
import sys

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

ROWS = COLUMNS = 512


def make(spec):
    pixels = b"".join(((i * 7) % 4096).to_bytes(2, "little") for i in range(ROWS * COLUMNS))
    for o in spec:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = o["sop_uid"]
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.SourceApplicationEntityTitle = "TOKYO_PACS"
        ds = Dataset()
        ds.file_meta = meta
        if o["charset"] == "ir87":
            ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
        elif o["charset"] == "ir13":
            ds.SpecificCharacterSet = ["ISO 2022 IR 13", "ISO 2022 IR 87"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = o["sop_uid"]
        ds.StudyInstanceUID = o["study_uid"]
        ds.SeriesInstanceUID = o["series_uid"]
        ds.FrameOfReferenceUID = o["study_uid"] + ".1"
        ds.StudyDate = o["study_date"]
        ds.SeriesDate = o["study_date"]
        ds.ContentDate = o["study_date"]
        ds.AcquisitionDateTime = o["study_date"] + "093000.000000"
        ds.StudyTime = "093000"
        ds.InstanceCreationDate = o["study_date"]
        ds.AccessionNumber = "ACC" + o["sop_uid"][-6:]
        ds.Modality = "CT"
        ds.InstitutionName = "東京中央病院" if o["charset"] != "ascii" else "Tokyo Central Hospital"
        ds.InstitutionAddress = "東京都千代田区1-2-3" if o["charset"] != "ascii" else "1-2-3 Chiyoda"
        ds.ReferringPhysicianName = "Suzuki^Ichiro=鈴木^一郎=すずき^いちろう" if o["charset"] == "ir87" else "Suzuki^Ichiro"
        ds.PerformingPhysicianName = "Tanaka^Hanako"
        ds.OperatorsName = "Sato^Jiro"
        ds.StationName = "CT-ROOM-2"
        ds.StudyDescription = "CT 膵臓" if o["charset"] != "ascii" else "CT pancreas"
        ds.StudyID = "S" + o["study_uid"][-4:]
        ds.SeriesNumber = 1
        ds.InstanceNumber = 1
        ds.PatientName = o["name"]
        ds.PatientID = o["patient_id"]
        ds.PatientBirthDate = "19600704"
        ds.PatientSex = "M"
        ds.PatientAge = "063Y"
        ds.PatientAddress = "千代田区" if o["charset"] != "ascii" else "Chiyoda"
        ds.OtherPatientIDsSequence = Sequence([Dataset()])
        ds.OtherPatientIDsSequence[0].PatientID = "INS-" + o["patient_id"]
        ds.OtherPatientIDsSequence[0].TypeOfPatientID = "TEXT"
        block = ds.private_block(0x0009, "ACME 1.0", create=True)
        block.add_new(0x01, "LO", "private note " + o["patient_id"])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ROWS
        ds.Columns = COLUMNS
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        if o.get("burned_in"):
            ds.BurnedInAnnotation = o["burned_in"]
        ds.PixelData = pixels
        ds.save_as(o["path"], enforce_file_format=True)


def load_table(path):
    exact, masked = set(), []
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        g, e, gm, em = (int(x, 16) for x in line.split("\t")[:4])
        if gm == 0xFFFF and em == 0xFFFF:
            exact.add((g << 16) | e)
        else:
            masked.append(((g << 16) | e, (gm << 16) | em))
    return exact, masked


def listed(tag, exact, masked):
    return tag in exact or any(tag & m == v for v, m in masked)


def private_left(ds):
    n = 0
    for elem in ds:
        if elem.tag.group % 2 == 1:
            n += 1
        if elem.VR == "SQ":
            n += sum(private_left(item) for item in elem.value)
    return n


def check(table, pairs):
    exact, masked = load_table(table)
    out = []
    for p in pairs:
        src = pydicom.dcmread(p["in"])
        r = {"in": p["in"], "out": p["out"]}
        try:
            ds = pydicom.dcmread(p["out"])  # no force: a conformant Part 10 file
        except Exception as e:  # the assertion says which file and why
            r["opened"] = False
            r["error"] = str(e)
            out.append(r)
            continue
        r["opened"] = True
        kept = []
        for elem in src:
            tag = int(elem.tag)
            # Times of day are kept by the Retain Longitudinal Temporal Information
            # with Modified Dates option that medanon applies (dates move by whole days).
            if not listed(tag, exact, masked) or elem.is_empty or elem.VR == "TM":
                continue
            if tag in ds and ds[tag].value == elem.value:
                kept.append(f"{elem.tag} {elem.keyword}")
        r["kept_original"] = kept
        r["private_left"] = private_left(ds)
        raw = open(p["out"], "rb").read()
        # The input's name as its bytes on disk (ISO 2022 escapes and all).
        name_bytes = bytes(src.PatientName.original_string)
        src_raw = open(p["in"], "rb").read()
        r["name_bytes_in_input"] = name_bytes in src_raw
        r["name_bytes_in_output"] = bytes(name_bytes) in raw
        r["input_name"] = str(src.PatientName)
        r["patient_name"] = str(ds.get("PatientName", ""))
        for k in ["PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyDate", "SeriesDate",
                  "AcquisitionDateTime", "StudyTime", "PatientIdentityRemoved", "DeidentificationMethod",
                  "PatientBirthDate", "PatientSex", "AccessionNumber", "InstitutionName", "FrameOfReferenceUID"]:
            v = ds.get(k)
            r[k] = None if v is None else str(v)
        r["input_StudyDate"] = str(src.StudyDate)
        r["input_StudyInstanceUID"] = str(src.StudyInstanceUID)
        r["media_sop_uid"] = str(ds.file_meta.MediaStorageSOPInstanceUID)
        r["codes"] = [str(i.CodeValue) for i in ds.get("DeidentificationMethodCodeSequence", [])]
        r["pixels_kept"] = ds.PixelData == src.PixelData
        out.append(r)
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(json.load(sys.stdin))
    elif sys.argv[1] == "check":
        check(sys.argv[2], json.load(sys.stdin))
    else:
        sys.exit("usage: ct.py make|check TABLE")
