"""The same ImageNet gate as imagenet.mps.yaml, written in Python (what a user copies)."""

MODEL = "fixtures/imagenet/efficientnet_lite0.onnx"
PHOTOS = "fixtures/photos"
LABELS = "fixtures/photos/labels.csv"


def test_mps_concentration(mps_audit):
    audit = mps_audit(MODEL, PHOTOS, labels=LABELS, seed=0)
    audit.check_concentration(median_between=(0.001, 0.5))


def test_over_interpretation_share(mps_audit):
    audit = mps_audit(MODEL, PHOTOS, labels=LABELS, seed=0)
    audit.check_concentration(floor=0.002, max_below_floor=0.5)


# No anomalies check, as in imagenet.mps.yaml: 8 photos are too few a reference to flag any
# size at the check's 5% false-alarm rate (39 are needed).
