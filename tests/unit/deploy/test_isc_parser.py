"""deploy.dhcp.isc_parser: tokens, syntax errors with lines, and the meaning of real-world
configs (Cobbler, Foreman/OMAPI, hand-written, DHCPv6, Debian's example). No database."""

import ipaddress

import pytest

from deploy.dhcp.isc_parser import DhcpdConfigError, parse, tokenize
from tests import dhcpd_data


def problems(text):
    with pytest.raises(DhcpdConfigError) as caught:
        parse(text)
    return [(p.line, p.message) for p in caught.value.problems]


def only_problem(text):
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def host(config, name):
    return next(h for h in config.hosts if h.name == name)


def subnet(config, network):
    return next(s for s in config.subnets if s.network == ipaddress.ip_network(network))


def ranges(item):
    return [(str(r.start), str(r.end)) for r in item.ranges]


def warning_lines(config):
    return {(w.line, w.message.split(":")[0]) for w in config.warnings}


# Tokens ------------------------------------------------------------------------------------


def test_tokens_carry_line_and_column():
    tokens = tokenize('option domain-name "x";\n  host a {\n')

    assert [(t.kind, t.value, t.line, t.column) for t in tokens] == [
        ("word", "option", 1, 1),
        ("word", "domain-name", 1, 8),
        ("string", "x", 1, 20),
        ("punct", ";", 1, 23),
        ("word", "host", 2, 3),
        ("word", "a", 2, 8),
        ("punct", "{", 2, 10),
    ]


def test_comments_end_at_the_line_but_not_inside_strings():
    tokens = tokenize('a; # b { c ;\n"d # e";  # f\n')

    assert [t.value for t in tokens] == ["a", ";", "d # e", ";"]


def test_string_escapes_follow_isc():
    (token,) = tokenize(r'"q\"q b\\s t\tn\no\101x\x42"')

    assert token.value == 'q"q b\\s t\tn\noAxB'


def test_a_string_may_span_lines_and_lines_keep_counting():
    tokens = tokenize('x "one\ntwo";\ny;')

    assert tokens[1].value == "one\ntwo"
    assert (tokens[3].value, tokens[3].line, tokens[3].column) == ("y", 3, 1)


def test_unterminated_string_is_reported_where_it_starts():
    assert only_problem('a;\noption domain-name "oops;\nb;\n') == (
        2,
        "unterminated string: the closing '\"' is missing",
    )


def test_control_characters_are_refused_with_their_line():
    assert only_problem("a;\nb\x00;\n")[0] == 2


# Syntax errors stop at the first, with its line ----------------------------------------------


def test_missing_semicolon_before_the_next_statement_points_at_the_line_that_lost_it():
    line, message = only_problem(dhcpd_data.text("missing_semicolon.conf"))

    assert line == 7
    assert "missing ';' after '52:54:00:40:00:01'" in message
    assert "'fixed-address', starts on line 8" in message


def test_missing_semicolon_before_a_closing_brace():
    assert only_problem("host a {\n  hardware ethernet 00:11:22:33:44:55\n}\n") == (
        2,
        "missing ';' after '00:11:22:33:44:55'",
    )


def test_missing_semicolon_at_the_end_of_the_file():
    assert only_problem("authoritative;\nddns-update-style none\n") == (
        2,
        "missing ';' after 'none' at end of file",
    )


def test_a_list_may_continue_on_the_next_line_without_a_false_alarm():
    config = parse("option domain-name-servers 10.0.0.1,\n    10.0.0.2;\n")

    assert config.options["domain-name-servers"] == ("10.0.0.1", "10.0.0.2")


def test_unbalanced_brace_names_the_block_whose_brace_went_missing():
    # Counting alone blames the group (line 5); the indentation of the last '}' shows that
    # host a (line 7) lost its own.
    line, message = only_problem(dhcpd_data.text("unbalanced_brace.conf"))

    assert line == 7
    assert message.startswith("'host a' is never closed")


def test_unclosed_block_without_an_indentation_hint_is_the_innermost():
    assert only_problem("group {\nhost a { hardware ethernet 00:11:22:33:44:55; }\n")[0] == 1


def test_an_extra_closing_brace():
    assert only_problem("host a {\n}\n}\n") == (3, "unexpected '}': no block is open")


def test_a_stray_semicolon_is_an_error_as_in_dhcpd_but_key_blocks_may_end_with_one():
    assert only_problem("a;\n;\n") == (2, "unexpected ';' with no statement before it")
    assert only_problem("group { };\n")[0] == 1

    config = parse('key k {\n  algorithm hmac-md5;\n  secret "c2VjcmV0";\n};\n')

    assert warning_lines(config) == {(1, "key declarations are not imported")}


def test_absurd_nesting_is_refused_not_recursed():
    line, message = only_problem("group {\n" * 100)

    assert line == 64
    assert "nested deeper" in message


# Value errors are all collected ---------------------------------------------------------------


def test_bad_macs_are_reported_each_with_its_line():
    found = problems(dhcpd_data.text("bad_mac.conf"))

    assert [line for line, _ in found] == [9, 13]
    assert "'52:54:00:4g:00:02' is not an ethernet MAC address" in found[0][1]
    assert "'52:54:00:43:03' is not an ethernet MAC address" in found[1][1]


def test_bad_addresses_are_reported_each_with_its_line():
    assert problems(dhcpd_data.text("bad_ip.conf")) == [
        (3, "'10.42.0.2000' is not an IPv4 address"),
        (11, "'10.42.0.300' is not an IPv4 address"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "a;\nsubnet 10.0.0.1 netmask 255.255.255.0 { }\n",
            2,
            "bad subnet number/mask combination",
        ),
        (
            "subnet 10.0.0.0 netmask 255.255.255.0 {\n  range 10.0.1.1 10.0.1.9;\n}\n",
            2,
            "10.0.1.1 is not in subnet 10.0.0.0/24",
        ),
        (
            "subnet 10.0.0.0 netmask 255.255.0.0 { }\nsubnet 10.0.5.0 netmask 255.255.255.0 { }\n",
            2,
            "overlaps subnet 10.0.0.0/16 declared on line 1",
        ),
        (
            "shared-network x {\n subnet 10.0.0.0 netmask 255.255.255.0 { }\n"
            " pool { range 10.9.0.1 10.9.0.5; }\n}\n",
            3,
            "in no subnet of shared-network x",
        ),
        ("a;\nhardware ethernet 00:11:22:33:44:55;\n", 2, "'hardware' is not allowed"),
        ("subnet 10.0.0.0 netmask 255.255.255.0 {\n pool { host a { } }\n}\n", 2, "'host'"),
        ("host a {\n hardware tokenbus 1:2:3;\n}\n", 2, "unknown hardware type"),
        ("host a {\n fixed-address 2001:db8::1;\n}\n", 2, "IPv6 needs the *6 form"),
        ("host a {\n fixed-address 10.0.0.1 10.0.0.2;\n}\n", 2, "expected ',' or ';'"),
        ("host a {\n fixed-address -bad-;\n}\n", 2, "neither an IP address nor a host name"),
        ("option routers 10.0.0.1 10.0.0.2;\n", 1, "expected ',' or ';'"),
        ("host a { }\nhost b { }\nhost a { }\n", 3, "host a is already declared on line 1"),
        ("host a;\n", 1, "'host' needs a '{ ... }' block"),
        ("else { }\n", 1, "'else' without an 'if'"),
        ('"quoted" 1;\n', 1, "expected a statement"),
    ],
)
def test_value_and_structure_errors(text, line, fragment):
    found = problems(text)

    assert found[0][0] == line, found
    assert fragment in found[0][1], found


# Unsupported statements: warnings, never a crash -----------------------------------------------


def test_unsupported_statements_are_skipped_with_warnings():
    config = parse(
        'include "/etc/dhcp/other.conf";\n'
        'class "c" { match if option vendor-class-identifier = "x"; }\n'
        'subclass "c" 1:52:54:00:00:00:01;\n'
        'if exists user-class { filename "a"; } elsif exists foo { } else { filename "b"; }\n'
        'failover peer "f" { primary; }\n'
        "zone example.org. { primary 127.0.0.1; }\n"
        "on commit { set x = 1; }\n"
        "mystery-block { }\n"
        "some-future-parameter 42;\n"
    )

    assert [w.line for w in config.warnings] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert "included file is not read" in config.warnings[0].message
    assert "unknown block" in config.warnings[7].message
    assert config.parameters["some-future-parameter"] == ("42",)
    assert "filename" not in config.parameters  # conditional: not evaluated


def test_option_definitions_configure_nothing():
    config = parse("option space PXE;\noption PXE.mtftp-ip code 1 = ip-address;\n")

    assert config.options == {}
    assert config.warnings == []


def test_expression_values_are_not_evaluated():
    config = parse('host a {\n  option host-name = concat("a", "b");\n}\n')

    assert config.hosts[0].host_name is None
    assert warning_lines(config) == {(2, "the value of host-name is an expression; not evaluated")}


def test_omapi_leases_semantics_deleted_and_redefined_hosts():
    config = parse(
        "host a { dynamic; hardware ethernet 00:00:00:00:00:01; }\n"
        "host a { dynamic; deleted; }\n"
        "host b { dynamic; hardware ethernet 00:00:00:00:00:02; }\n"
        "host b { dynamic; hardware ethernet 00:00:00:00:00:03; }\n"
    )

    assert [(h.name, h.mac, h.line) for h in config.hosts] == [("b", "00:00:00:00:00:03", 4)]
    assert [w.line for w in config.warnings] == [2, 4]


# Real-world styles ------------------------------------------------------------------------------


def test_cobbler_style():
    config = parse(dhcpd_data.text("cobbler.conf"))

    (net,) = config.subnets
    assert net.network == ipaddress.ip_network("192.168.122.0/24")
    assert net.routers == ("192.168.122.1",)
    assert net.name_servers == ("192.168.122.1",)
    assert net.parameters["next-server"] == ("192.168.122.2",)
    assert [(r.line, r.dynamic_bootp) for r in net.ranges] == [(25, True)]
    assert ranges(net) == [("192.168.122.100", "192.168.122.254")]

    web01 = host(config, "generic1")
    assert (web01.line, web01.mac) == (48, "52:54:00:7c:01:01")
    assert web01.host_name == "web01.example.com"
    assert [(a.value, a.line) for a in web01.fixed_addresses] == [("192.168.122.11", 50)]
    assert (web01.filename, web01.next_server) == ("pxelinux.0", "192.168.122.2")
    # MACs come out normalised; the gPXE filename is conditional, so there is none.
    web02 = host(config, "generic2")
    assert (web02.mac, web02.filename) == ("52:54:00:7c:01:02", None)
    # An InfiniBand host is identified by its client identifier: no ethernet MAC.
    assert host(config, "generic3").mac is None
    # The storage group's filename and next-server reach its hosts.
    for name in ("db01-eth0", "db01-eth1", "nas01"):
        assert host(config, name).filename == "grub/grubx64.efi"
        assert host(config, name).next_server == "192.168.122.3"
    assert host(config, "nas01").fixed_addresses == []
    assert {line for line, _ in warning_lines(config)} == {29, 63}
    assert config.warnings[1].message.startswith("conditional (if/elsif/else) statements")


def test_foreman_omapi_style():
    config = parse(dhcpd_data.text("foreman.conf"))

    (net,) = config.subnets
    assert net.network == ipaddress.ip_network("10.20.0.0/22")
    assert ranges(net) == [("10.20.1.0", "10.20.1.254")]
    assert net.ranges[0].in_pool
    assert net.domain_name == "example.com"
    assert net.name_servers == ("10.20.0.10", "10.20.0.11")
    assert config.parameters["filename"] == ("pxelinux.0",)
    assert "not authoritative" in config.parameters

    assert [h.name for h in config.hosts] == [
        "app01.example.com",
        "app02.example.com",
        "app03.example.com",
    ]
    app02 = host(config, "app02.example.com")
    assert app02.dynamic
    assert app02.host_name == "app02.example.com"
    assert app02.filename == "grub2/grubx64.efi"  # supersede beats the global filename
    assert app02.next_server == "10.20.0.5"  # OMAPI's colon-hex 0a:14:00:05
    assert [w.line for w in config.warnings] == [7, 32, 43, 45, 94]
    assert "deleted" in config.warnings[-1].message


def test_hand_written_style():
    config = parse(dhcpd_data.text("handwritten.conf"))

    assert config.options["root-path"] == ("nfs:10.30.0.5:/export/root;ro # {not a comment}",)
    assert config.options["domain-search"] == ("lab.example.net", "example.net")
    assert config.options["domain-name-servers"] == ("10.30.0.53", "10.30.0.54")

    floor0 = subnet(config, "10.30.0.0/24")
    floor1 = subnet(config, "10.30.1.0/24")
    assert (floor0.shared_network, floor1.shared_network) == ("floor2", "floor2")
    # Pools in the shared network land in the subnet that holds their range.
    assert ranges(floor0) == [("10.30.0.100", "10.30.0.150")]
    assert ranges(floor1) == [("10.30.1.50", "10.30.1.50"), ("10.30.1.100", "10.30.1.150")]
    assert floor1.domain_name == "floor2.lab.example.net"
    assert floor0.domain_name == "lab.example.net"
    assert subnet(config, "10.30.8.0/24").routers == ("gw8.lab.example.net",)

    node01 = host(config, "node01")
    assert node01.mac == "00:25:90:0a:0b:01"
    assert node01.server_name == 'boot "main" server; primary'
    assert (node01.filename, node01.next_server) == ("pxelinux.0", "10.30.0.5")
    assert host(config, "node02").filename == "grubx64.efi"
    node03 = host(config, "node03")
    assert (node03.filename, node03.next_server) == ("pxelinux.0", "10.30.0.6")
    assert [a.value for a in node03.fixed_addresses] == ["10.30.1.20", "10.30.1.21"]
    assert host(config, "printer").subnet == ipaddress.ip_network("10.30.8.0/24")
    (fantasia,) = host(config, "fantasia").fixed_addresses
    assert (fantasia.value, fantasia.is_ip) == ("fantasia.lab.example.net", False)
    assert warning_lines(config) == {
        (19, "class declarations are not imported"),
        (23, "event (on commit/release/expiry) statements are not evaluated"),
    }


def test_ipv6_style():
    config = parse(dhcpd_data.text("ipv6.conf"))

    storage = subnet(config, "2001:db8:40::/64")
    assert ranges(storage) == [("2001:db8:40::1000", "2001:db8:40::1fff")]
    assert storage.name_servers == ("2001:db8:40::53", "2001:db8:40::54")
    assert ranges(subnet(config, "2001:db8:41::/64")) == [("2001:db8:41::", "2001:db8:41::ffff")]
    stor01 = host(config, "stor01")
    assert [(a.value, a.line) for a in stor01.fixed_addresses] == [("2001:db8:40::11", 24)]
    assert host(config, "stor02").mac is None
    assert warning_lines(config) == {(13, "prefix6 (prefix delegation) is not imported")}


def test_debian_example_as_shipped():
    config = parse(dhcpd_data.debian_example())

    assert config.options["domain-name"] == ("example.org",)
    assert config.options["domain-name-servers"] == ("ns1.example.org", "ns2.example.org")
    assert config.parameters["ddns-update-style"] == ("none",)
    assert (config.subnets, config.hosts, config.warnings) == ([], [], [])


def test_debian_example_with_its_commented_configuration_switched_on():
    config = parse(dhcpd_data.uncomment(dhcpd_data.debian_example()))

    assert [str(s.network) for s in config.subnets] == [
        "10.152.187.0/24",
        "10.254.239.0/27",
        "10.254.239.32/27",
        "10.5.5.0/27",
        "10.17.224.0/24",
        "10.0.29.0/24",
    ]
    assert [r.dynamic_bootp for r in subnet(config, "10.254.239.32/27").ranges] == [True]
    assert ranges(subnet(config, "10.0.29.0/24")) == [("10.0.29.10", "10.0.29.230")]
    passacaglia = host(config, "passacaglia")
    assert passacaglia.mac == "00:00:c0:5d:bd:95"
    assert passacaglia.server_name == "toccata.example.com"
    assert [(w.line, w.message) for w in config.warnings] == [
        (88, 'class declarations are not imported: class "foo"')
    ]


# The real ISC checker agrees ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(dhcpd_data.VALID))
def test_valid_test_files_pass_dhcpd_own_check(name):
    status, stderr = dhcpd_data.dhcpd_check(dhcpd_data.path(name), ipv6=dhcpd_data.VALID[name])

    assert status == 0, stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", dhcpd_data.BROKEN)
def test_broken_test_files_fail_dhcpd_own_check_too(name):
    status, stderr = dhcpd_data.dhcpd_check(dhcpd_data.path(name))

    assert status != 0
    assert "line" in stderr


@pytest.mark.slow
def test_uncommented_debian_example_passes_dhcpd_own_check(tmp_path):
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(dhcpd_data.uncomment(dhcpd_data.debian_example()))

    status, stderr = dhcpd_data.dhcpd_check(conf)

    assert status == 0, stderr


def test_blank_and_comment_tail_and_empty_text():
    assert parse("a;   \n  # the end\n\t\n").parameters == {"a": ()}
    assert parse("").hosts == []


def test_hostile_token_counts_are_refused(monkeypatch):
    monkeypatch.setattr("deploy.dhcp.isc_parser.MAX_TOKENS", 100)

    assert only_problem("a " * 200) == (1, "more than 100 tokens: not a configuration file")


def test_named_group_reference_in_a_host_and_switch_blocks_are_skipped_with_warnings():
    config = parse(
        'host a {\n  group "web";\n  hardware ethernet 00:00:00:00:00:01;\n}\n'
        'switch (option dhcp-message-type) {\n  case 1:\n    filename "x";\n  default:\n'
        '    filename "y";\n}\n'
    )

    assert config.hosts[0].mac == "00:00:00:00:00:01"
    assert [w.line for w in config.warnings] == [2, 5]
    assert "filename" not in config.parameters
