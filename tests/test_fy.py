from datetime import date

import pytest

from cml.fy import fy_label, fy_of, parse_fy


@pytest.mark.parametrize("bad", ["2018-19", "2018/20", "18/19", "", "2018/19x", "1999/01"])
def test_malformed_labels_are_refused(bad):
    with pytest.raises(ValueError):
        parse_fy(bad)


def test_round_trip_across_the_century():
    assert parse_fy(fy_label(2099)) == 2099
    assert fy_label(1999) == "1999/00"


def test_31_march_belongs_to_the_year_before():
    assert fy_of(date(2022, 3, 31)) == 2021
    assert fy_of(date(2022, 4, 1)) == 2022
