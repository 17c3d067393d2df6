#!/usr/bin/env bash
# DICOM de-identification throughput (issue 20): a 512x512 16-bit CT slice,
# de-identified with crates/medanon-dicom, against plain parse+write of the same
# object in the same run. One core; no database needed. BENCHMARKS.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --profile dist -p medanon-dicom --example throughput -- "${1:-2000}"
