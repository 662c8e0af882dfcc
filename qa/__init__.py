"""Question -> passages -> answer with sources; the `docqa` command."""
