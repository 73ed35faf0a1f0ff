"""The simulators datasets are evaluated in: gymnasium-robotics' environments (and OGBench's,
when its package is installed), registered once.

With mujoco 4, ``mujoco.mjtJoint`` members no longer compare equal to the ``numpy.int32`` joint
types in ``model.jnt_type``, so gymnasium-robotics 1.4.2's ``get_joint_qpos``/``get_joint_qvel``
fail their ``assert joint_type in (HINGE, SLIDE)`` and ``FrankaKitchen-v1`` (the Kitchen datasets'
evaluation env) cannot even be made. When (and only when) the installed pair has that fault,
both functions are replaced by versions that compare the joint type by its integer value.
"""

from __future__ import annotations

import contextlib
import io

import gymnasium as gym

#: Entries in qpos and qvel per joint type (free, ball, slide, hinge: mjtJoint's values 0-3).
_QPOS_WIDTH = {0: 7, 1: 4, 2: 1, 3: 1}
_QVEL_WIDTH = {0: 6, 1: 3, 2: 1, 3: 1}


def _joint_slice(model, name: str, widths: dict[int, int], address):
    import mujoco

    joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if joint == -1:
        raise ValueError(f"Joint with name '{name}' is not part of the model!")
    start = int(address[joint])
    return slice(start, start + widths[int(model.jnt_type[joint])])


def _get_joint_qpos(model, data, name):
    """A joint's qpos entries (joint type compared by value)."""
    return data.qpos[_joint_slice(model, name, _QPOS_WIDTH, model.jnt_qposadr)].copy()


def _get_joint_qvel(model, data, name):
    """A joint's qvel entries (joint type compared by value)."""
    return data.qvel[_joint_slice(model, name, _QVEL_WIDTH, model.jnt_dofadr)].copy()


def _library_joint_lookup_works(mujoco_utils) -> bool:
    """Ask the library's own lookup about a hinge joint of a one-body model."""
    import mujoco

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><joint name='j' type='hinge'/><geom size='.1'/></body>"
        "</worldbody></mujoco>"
    )
    try:
        mujoco_utils.get_joint_qpos(model, mujoco.MjData(model), "j")
    except AssertionError:
        return False
    return True


def register_robotics_envs() -> None:
    """Register gymnasium-robotics' environments (idempotent; its import-time notice about the
    Adroit v1 rewards, irrelevant here, is silenced), mending the joint lookup for mujoco 4."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics
        from gymnasium_robotics.utils import mujoco_utils

    if not _library_joint_lookup_works(mujoco_utils):
        mujoco_utils.get_joint_qpos = _get_joint_qpos
        mujoco_utils.get_joint_qvel = _get_joint_qvel
    gym.register_envs(gymnasium_robotics)
    with contextlib.suppress(ImportError):  # the optional extra: iql-sweep[ogbench]
        import ogbench

        gym.register_envs(ogbench)
