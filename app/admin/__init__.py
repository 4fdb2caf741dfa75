"""Administration pages: users, groups, organisation, processes."""
