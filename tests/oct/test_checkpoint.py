# Copyright (c) 2026 the bundle collection authors. Licensed under the Apache License, Version 2.0 (see LICENSE).
import pytest
import torch

from shared.errors import InputError, MissingInputError
from shared.networks.ai_cnet3d import AICNet3D
from shared.oct.checkpoint import check_checkpoint, load_stage1_weights, read_network_state


def test_checkpoints_are_checked_before_use(tmp_path):
    net = AICNet3D(attention_type="hemiretinal")
    path = tmp_path / "model.pt"
    torch.save({"model": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)  # nested, DDP-prefixed
    assert read_network_state(str(path), AICNet3D()).keys() == net.state_dict().keys()
    # same keys and shapes, another architecture: refused with the network's own explanation
    with pytest.raises(InputError, match="model.pt does not fit this network: checkpoint was trained with attention_t"):
        check_checkpoint(str(path), AICNet3D(attention_type="onh_macula"), what="The model")
    with pytest.raises(InputError, match="was not made for this network"):
        check_checkpoint(str(path), AICNet3D(attention_type="both"))
    torch.save({"model": net}, tmp_path / "pickled.pt")
    with pytest.raises(InputError, match="pickled.pt is not a plain state dict"):
        check_checkpoint(str(tmp_path / "pickled.pt"), net)
    check_checkpoint(str(tmp_path / "absent.pt"), net, required=False)  # a resume file not written yet
    with pytest.raises(MissingInputError, match="The stage-1 model .*absent.pt does not exist: run stage 1 first"):
        load_stage1_weights(net, str(tmp_path / "absent.pt"))
    other = AICNet3D()
    load_stage1_weights(other, str(path))
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), net.state_dict().values()))
