"""ComfyUI loads this pack from here (custom_nodes/<this folder>/). V3 node API: only ``comfy_entrypoint``.

Exporting NODE_CLASS_MAPPINGS too would make ComfyUI ignore comfy_entrypoint. The nodes are imported when
ComfyUI calls the entry point, so importing this file outside ComfyUI (pytest collects the repository root as a
package) needs no ComfyUI modules.
"""


async def comfy_entrypoint():
    from .nodes import comfy_entrypoint as entry

    return await entry()


__all__ = ["comfy_entrypoint"]
