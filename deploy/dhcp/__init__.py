"""DHCP: renderers for ISC dhcpd, Kea and dnsmasq, and the parser that reads an existing
dhcpd.conf (isc_parser). Nothing here imports models: callers hand in and get back dataclasses.
"""
