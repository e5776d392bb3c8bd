"""The central router: verifies, authorises and fans searches out to the national
nodes and Europol, relays core-data messages, and keeps metadata only."""
