"""The speaker's asyncio runtime: the adapters around the sans-IO VRRP core."""
