"""inventory.noderange: xCAT-style node ranges, parsed without a database."""

import pytest
from django.core.exceptions import ValidationError

from inventory import noderange


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("node01", ["node01"]),
        ("Node01.DC1.example", ["node01.dc1.example"]),
        ("node[01-03]", ["node01", "node02", "node03"]),
        ("node[1-3]", ["node1", "node2", "node3"]),
        ("node[8-11]", ["node8", "node9", "node10", "node11"]),
        ("node[08-11]", ["node08", "node09", "node10", "node11"]),
        ("node[001-002]", ["node001", "node002"]),
        ("node[7]", ["node7"]),
        ("rack1-node[1-3]", ["rack1-node1", "rack1-node2", "rack1-node3"]),
        ("node[1-2].dc1.example", ["node1.dc1.example", "node2.dc1.example"]),
        ("r[1-2]n[1,5-6]", ["r1n1", "r1n5", "r1n6", "r2n1", "r2n5", "r2n6"]),
        ("node[01-02],db1, compute", ["node01", "node02", "db1", "compute"]),
        ("node[1-2],node2,node1", ["node1", "node2"]),  # duplicates once, first order kept
        ("a,b", ["a", "b"]),
        ("web_1,grp:gpu", ["web_1", "grp:gpu"]),
    ],
)
def test_expand(text, names):
    assert noderange.expand(text) == names


def test_terms_say_whether_brackets_made_the_names():
    terms = noderange.parse("node[1-2],compute")
    assert [(t.text, t.names, t.expanded) for t in terms] == [
        ("node[1-2]", ("node1", "node2"), True),
        ("compute", ("compute",), False),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty node range"),
        ("   ", "empty node range"),
        (None, "empty node range"),
        ("a,,b", "Empty item"),
        ("a,", "Empty item"),
        ("node[1-3", "Unclosed '['"),
        ("node1-3]", "Unmatched ']'"),
        ("node[1-[2]]", "Nested '['"),
        ("node[a-c]", "not a number range"),
        ("node[]", "not a number range"),
        ("node[1--3]", "not a number range"),
        ("node[5-1]", "runs backwards"),
        ("node[0-10000]", "more than 10000"),
        ("r[1-200]n[1-200]", "more than 10000"),
        ("node[1-6000],x[1-6000]", "more than 10000"),
        ("node 1", "only letters, digits"),
        ("node/1", "only letters, digits"),
        ("node*", "only letters, digits"),
    ],
)
def test_errors(text, fragment):
    with pytest.raises(ValidationError) as info:
        noderange.parse(text)
    assert fragment in info.value.messages[0]
