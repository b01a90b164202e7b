"""How orchestration policies are learned: ``training`` (``oce-sim train``: run folders, checkpoints, resume,
TensorBoard, Stable-Baselines3 algorithms) and ``factored_ppo`` (masked PPO with one advantage per segment, the
default).  A trained policy is stored and loaded by ``oce_sim.agents.model_file``.

May import: ``oce_sim.envs``, ``oce_sim.agents``, ``oce_sim.world``, ``oce_sim.config``, ``oce_sim.storage``.
"""
