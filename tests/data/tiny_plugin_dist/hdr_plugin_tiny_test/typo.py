"""A broken plugin: the hook name is misspelled (British spelling of ``finalize``)."""

from hdr_plugin import hookimpl


@hookimpl
def hdr_finalise_output(result, context):
    result.image[:] = 0
