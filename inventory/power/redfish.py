"""The redfish driver (being written)."""
