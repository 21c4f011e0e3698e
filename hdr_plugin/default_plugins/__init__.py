"""Built-in behaviour, registered as ordinary plugins (see ``hdr_plugin.plugins.DEFAULT_PLUGINS``)."""
