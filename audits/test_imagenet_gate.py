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


def test_no_anomalous_photos(mps_audit):
    audit = mps_audit(MODEL, PHOTOS, labels=LABELS, seed=0)
    audit.check_anomalies(method="mad", reference="all", max_fraction=0.25)
