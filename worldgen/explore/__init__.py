"""Making a panorama world explorable: the full sphere around the eye (``sphere``), what lies
behind the foreground (``background``) and a world grown around a photo (``photo``).

Each works on any backend through the generic path, joint RGB + modality inpainting with the
backend's ``edit`` task on perspective views rendered from the band; a backend that can do better
(the procedural one renders any view directly) offers the task itself (``Backend.sphere``,
``Backend.layers``) and is asked first.
"""
