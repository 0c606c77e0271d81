import pytest

from shared.bundle import bundle_root


def test_bundle_root_from_repo_root_and_from_inside(tmp_path):
    bundle = tmp_path / "bundles" / "demo_seg"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "metadata.json").write_text("{}")
    assert bundle_root("demo_seg", cwd=tmp_path) == str(bundle)  # repository root
    assert bundle_root("demo_seg", cwd=bundle) == str(bundle)  # inside the bundle or an unpacked zip
    with pytest.raises(FileNotFoundError, match="--bundle_root"):
        bundle_root("demo_seg", cwd=tmp_path / "bundles")
