"""Where the speaker's configuration comes from: a file (standalone) or the cluster."""
