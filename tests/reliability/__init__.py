"""The reliability suite: crashes, outages, hostile input, isolation and secrets, each reported as figures."""
