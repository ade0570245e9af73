"""configs.common: ``parse_arg`` (typed ``key=value`` overrides, clear errors) and model sizes."""

import pytest

from configs import common


def test_parse_arg_types_and_errors():
    args = common.parse_arg(
        " stage=autoencoder , size=small,flag=false,n=3", stage="all", size="base", flag=True, n=1
    )
    assert (args.stage, args.size, args.flag, args.n) == ("autoencoder", "small", False, 3)
    assert common.parse_arg(None, stage="all").stage == "all"
    with pytest.raises(ValueError, match="unknown config arg 'sise'"):
        common.parse_arg("sise=small", size="base")
    with pytest.raises(ValueError, match="key=value"):
        common.parse_arg("small", size="base")
    with pytest.raises(ValueError, match="not a int"):
        common.parse_arg("n=three", n=1)
    with pytest.raises(ValueError, match="unknown model size"):
        common.model_config("huge")
