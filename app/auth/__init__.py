"""Users, groups, organisation units and sign-in."""
