"""The contact base (GRC): citizens, companies, associations and public bodies."""
