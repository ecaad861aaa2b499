"""MiniPacman: DeepMind's PillEater from the I2A paper, the environment of the chapter's last three scripts.

A gymnasium environment with the original's maze, dynamics, colours and per-mode rewards, fast enough to feed
16 environments from one process: `MiniPacman(mode, frame_cap)`, also registered as "MiniPacman-v0"
(`gymnasium.make("MiniPacman-v0", mode="hunt")`).

- Observation: RGB float32 in [0, 1], shape (3, 15, 19): pacman green, ghost red, edible ghost
  (1, power/20, 0), power pill cyan, food blue, wall white, empty black (drawn in that order of priority).
- Actions: 0 stay, 1 right, 2 up, 3 left, 4 down.
- Episode: terminated when a ghost kills pacman; truncated at `frame_cap` steps. Clearing a level (per mode:
  all food, both pills, all ghosts, or 128 steps in "avoid") starts the next level within the episode.
- `info`: the step's events: food, pill, ghost_eaten, killed (0 or 1 each) and the level.
- Randomness: only the env's own generator, so `reset(seed=...)` reproduces an episode exactly.

Differences from the original code (kept otherwise, down to the order of the collision checks): a death is
counted once per step (the original could add the death reward twice); ghosts start facing one of the four
real directions (the original drew 0..3 among the codes 2..5); the original's global NumPy RNG is the env's own.
"""

from __future__ import annotations

import random
from collections import deque
from itertools import product

import gymnasium as gym
import numpy as np

# The original PillEater maze: 1 wall, 0 free (15 x 19, 138 free cells).
STANDARD_MAP = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        [1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1],
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1],
        [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1],
        [1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1],
        [1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1],
        [1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1],
        [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1],
        [1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1],
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1],
        [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    ],
    dtype=np.uint8,
)
HEIGHT, WIDTH = STANDARD_MAP.shape

# Actions: 0 stay, 1 right, 2 up, 3 left, 4 down. Ghosts move in the four directions 1..4.
MOVES = ((0, 0), (0, 1), (-1, 0), (0, -1), (1, 0))
REVERSE = {1: 3, 2: 4, 3: 1, 4: 2}

PACMAN, GHOST, PILL, FOOD, WALL, EMPTY = (
    (0.0, 1.0, 0.0),
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 1.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 1.0),
    (0.0, 0.0, 0.0),
)

MODES = ("regular", "avoid", "hunt", "ambush", "rush")
# Per mode: rewards (step, food, power pill, eat a ghost, killed) and what ends a level.
REWARD_TABLE = {
    "regular": dict(step=0.0, food=1.0, pill=2.0, ghost=5.0, killed=0.0, level_ends="food"),
    "avoid": dict(step=0.1, food=-0.1, pill=-5.0, ghost=-10.0, killed=-20.0, level_ends="food or 128 steps"),
    "hunt": dict(step=0.0, food=0.0, pill=1.0, ghost=10.0, killed=-20.0, level_ends="ghosts"),
    "ambush": dict(step=0.0, food=-0.1, pill=0.0, ghost=10.0, killed=-20.0, level_ends="ghosts"),
    "rush": dict(step=0.0, food=-0.1, pill=10.0, ghost=0.0, killed=0.0, level_ends="pills"),
}
PILL_DURATION = 20
NUM_PILLS = 2
SAFE_DISTANCE = 5
STOCHASTICITY = 0.05


def step_rewards(mode: str) -> list[float]:
    """Every reward one step of `mode` can produce: the step reward plus any of food, pill and either eating a
    ghost or being killed (at most one of each per step), rounded to 6 decimals, sorted."""
    table = REWARD_TABLE[mode]
    totals = set()
    for food, pill, ghost, killed in product((0, 1), repeat=4):
        if ghost and killed:  # with power pacman eats, without it he dies: never both in one step
            continue
        total = (
            table["step"]
            + food * table["food"]
            + pill * table["pill"]
            + ghost * table["ghost"]
            + killed * table["killed"]
        )
        totals.add(round(total, 6) + 0.0)
    return sorted(totals)


def reward_classes(mode: str) -> list[float]:
    """The classes an environment model predicts: for "regular" the book's 0..9 (its published model was
    trained with them; they cover every regular reward), for the other modes `step_rewards(mode)`."""
    return [float(r) for r in range(10)] if mode == "regular" else step_rewards(mode)


FREE_CELLS = [(r, c) for r in range(HEIGHT) for c in range(WIDTH) if STANDARD_MAP[r, c] == 0]
# NEXT[(r, c)][a]: the cell reached from (r, c) with action a (a wall in the way: stay).
NEXT = {
    (r, c): tuple((r + dr, c + dc) if STANDARD_MAP[r + dr, c + dc] == 0 else (r, c) for dr, dc in MOVES)
    for r, c in FREE_CELLS
}
# The directions (1..4) in which a ghost can leave each cell.
EXITS = {cell: tuple(d for d in range(1, 5) if NEXT[cell][d] != cell) for cell in FREE_CELLS}


def _level_start_image() -> np.ndarray:
    """Walls (white) and food on every free cell (blue): the picture at the start of each level."""
    image = np.zeros((3, HEIGHT, WIDTH), dtype=np.float32)
    image[:, STANDARD_MAP == 1] = np.array(WALL, dtype=np.float32)[:, None]
    image[:, STANDARD_MAP == 0] = np.array(FOOD, dtype=np.float32)[:, None]
    return image


LEVEL_START_IMAGE = _level_start_image()


class MiniPacman(gym.Env):
    """The PillEater game (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}
    num_actions = 5

    # the spaces, also readable from the class (MiniPacman.observation_space.shape) without making a game
    observation_space = gym.spaces.Box(0.0, 1.0, shape=(3, HEIGHT, WIDTH), dtype=np.float32)
    action_space = gym.spaces.Discrete(len(MOVES))

    def __init__(self, mode: str = "regular", frame_cap: int = 1000, render_mode: str | None = "rgb_array"):
        if mode not in MODES:
            raise ValueError(f"unknown MiniPacman mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode = mode
        self.frame_cap = frame_cap
        self.render_mode = render_mode
        self.rewards = REWARD_TABLE[mode]
        self.level_ends = {"regular": "food", "avoid": "food", "hunt": "ghosts", "ambush": "ghosts", "rush": "pills"}[
            mode
        ]
        self.timer_terminate = 128 if mode == "avoid" else -1  # avoid: a level also ends after 128 steps
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(3, HEIGHT, WIDTH), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(MOVES))
        self._rng = random.Random()
        self._background = LEVEL_START_IMAGE.copy()  # walls and the food still there, kept up to date
        self._observation = self._background.copy()

    # --- gymnasium API --------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # Step-level randomness comes from a fast Python generator seeded from the env's own np_random.
        self._rng.seed(int(self.np_random.integers(2**63)))
        self.frame = 0
        self._init_level(1)
        return self._draw(), {"level": self.level}

    def step(self, action):
        action = int(action)
        if not 0 <= action < 5:
            raise ValueError(f"MiniPacman action must be 0..4, got {action}")
        self.frame += 1
        self.timer += 1
        self.power = max(0, self.power - 1)
        events = dict(food=0, pill=0, ghost_eaten=0, killed=0)

        # Pacman moves, eats the food and the pill on his new cell.
        self.pacman = NEXT[self.pacman][action]
        if self.pacman in self.food:
            self.food.discard(self.pacman)
            self._background[2, self.pacman[0], self.pacman[1]] = 0.0
            events["food"] = 1
            if not self.food and self.level_ends == "food":
                self._init_level(self.level + 1)
        if self.pacman in self.pills:
            self.pills.remove(self.pacman)
            events["pill"] = 1
            self.power = PILL_DURATION
            if not self.pills and self.level_ends == "pills":
                self._init_level(self.level + 1)

        # Each ghost: a collision before it moves, then it moves (or not), then a collision again.
        for i, ghost in enumerate(self.ghosts):
            if ghost[0] == self.pacman:
                if self.power == 0:
                    events["killed"] = 1
                else:
                    self._eat_ghost(i, events)
                    break
            speed = self.ghost_speed * (0.5 if self.power else 1.0)
            if self._rng.random() < speed:
                self._move_ghost(ghost)
                if ghost[0] == self.pacman:
                    if self.power == 0:
                        events["killed"] = 1
                    else:
                        self._eat_ghost(i, events)
                        break  # one ghost eaten per step

        if self.timer == self.timer_terminate:
            self._init_level(self.level + 1)

        r = self.rewards
        reward = (
            r["step"]
            + events["food"] * r["food"]
            + events["pill"] * r["pill"]
            + events["ghost_eaten"] * r["ghost"]
            + events["killed"] * r["killed"]
        )
        terminated = bool(events["killed"])
        truncated = not terminated and self.frame_cap > 0 and self.frame >= self.frame_cap
        return self._draw(), float(round(reward, 6)), terminated, truncated, dict(events, level=self.level)

    def render(self) -> np.ndarray:
        """The current frame as an RGB uint8 image, each cell drawn as an 8x8 square (120 x 152 pixels)."""
        frame = (self._observation.transpose(1, 2, 0) * 255).astype(np.uint8)
        return frame.repeat(8, axis=0).repeat(8, axis=1)

    # --- the game -------------------------------------------------------------------------------------------

    def scripted_action(self) -> int:
        """A scripted player, not a learner: with a power pill's effect on, after the nearest ghost; otherwise to
        the nearest power pill, then the nearest food, keeping off the cells a ghost can reach next; with neither
        left, away from the ghosts. Chapter_14_Imagination.py can let it play some games (`--scripted-games`), so
        the environment model sees the events a collapsed agent never meets (hunt: 86.2 a game, over 30)."""
        ghosts = {tuple(ghost[0]) for ghost in self.ghosts}
        if self.power > 2 and ghosts:
            return first_step_towards(self.pacman, ghosts)
        danger = frozenset(NEXT[g][a] for g in ghosts for a in range(5))
        for goals in (set(self.pills), self.food):
            if goals:
                return first_step_towards(self.pacman, goals, danger)
        return max(range(5), key=lambda a: min((distance(NEXT[self.pacman][a], g) for g in ghosts), default=0))

    def _random_cell(self, excluded=None) -> tuple[int, int]:
        cells = FREE_CELLS if excluded is None else [c for c in FREE_CELLS if not excluded(c)]
        return cells[self._rng.randrange(len(cells))]

    def _init_level(self, level: int) -> None:
        self.level = level
        self.food = set(FREE_CELLS)
        self._background[:] = LEVEL_START_IMAGE
        self.pills = [self._random_cell() for _ in range(NUM_PILLS)]
        self.pacman = self._random_cell()
        pr, pc = self.pacman

        # The original's safe zone: rows pr-5 .. pr+4 and columns pc-5 .. pc+4 around pacman.
        def near(cell):
            return (
                pr - SAFE_DISTANCE <= cell[0] < pr + SAFE_DISTANCE
                and pc - SAFE_DISTANCE <= cell[1] < pc + SAFE_DISTANCE
            )

        nghosts = 1 + (level - 1) // 2
        self.ghosts = [
            [self._random_cell(near), self._rng.randrange(1, 5)] for _ in range(nghosts)
        ]  # [cell, direction]
        self.power = 0
        self.ghost_speed = 0.5 + 0.1 * (level - 1)
        self.timer = 0

    def _eat_ghost(self, i: int, events: dict) -> None:
        self.ghosts.pop(i)
        events["ghost_eaten"] = 1
        if not self.ghosts and self.level_ends == "ghosts":
            self._init_level(self.level + 1)

    def _move_ghost(self, ghost: list) -> None:
        cell, direction = ghost
        exits = EXITS[cell]
        if len(exits) == 1:
            direction = exits[0]
        elif len(exits) == 2:
            if direction not in exits:  # a corner: take the exit that does not go back
                direction = exits[1] if REVERSE[direction] == exits[0] else exits[0]
        else:  # a junction: never back; chase pacman (or flee him with power), sometimes at random
            options = [d for d in exits if d != REVERSE[direction]]
            dy, dx = self.pacman[0] - cell[0], self.pacman[1] - cell[1]
            if dy or dx:
                # The dot product of each direction with the unit vector towards pacman (norm cancels in argmax).
                scores = [MOVES[d][0] * dy + MOVES[d][1] * dx for d in options]
                if self.power == 0:
                    if self._rng.random() < STOCHASTICITY:
                        direction = options[self._rng.randrange(len(options))]
                    else:
                        direction = options[scores.index(max(scores))]
                else:
                    direction = options[scores.index(min(scores))]
        ghost[0], ghost[1] = NEXT[cell][direction], direction

    def _draw(self) -> np.ndarray:
        """The observation, painted in reverse priority: walls and food, then pills, ghosts, pacman."""
        image = self._background.copy()
        for r, c in self.pills:
            image[:, r, c] = PILL
        edible = self.power / PILL_DURATION
        for (r, c), _ in self.ghosts:
            image[:, r, c] = (1.0, edible, 0.0)
        image[:, self.pacman[0], self.pacman[1]] = PACMAN
        self._observation = image
        return image.copy()


gym.register(id="MiniPacman-v0", entry_point="common.minipacman:MiniPacman")


COLOUR_KEY = (
    ("pacman", PACMAN),
    ("ghost", GHOST),
    ("edible ghost", (1.0, 0.5, 0.0)),
    ("power pill", PILL),
    ("food", FOOD),
    ("wall", WALL),
)


def distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def first_step_towards(start: tuple[int, int], goals, blocked=frozenset()) -> int:
    """Breadth-first search over the maze: the action that starts a shortest path from start to any goal, avoiding
    `blocked` cells (0, stay, when no goal can be reached)."""
    if start in goals:
        return 0
    queue, first = deque([start]), {start: None}
    while queue:
        cell = queue.popleft()
        for action in range(1, 5):
            step = NEXT[cell][action]
            if step == cell or step in first or step in blocked:
                continue
            first[step] = action if first[cell] is None else first[cell]
            if step in goals:
                return first[step]
            queue.append(step)
    return 0


def save_gif(frames: list[np.ndarray], path, fps: int = 8, scale: int = 2) -> None:
    """Write RGB uint8 frames (from `render()`) as an animated GIF, `scale` times larger, with a colour key under
    the maze; atomically (never half a GIF)."""
    from common.runtime import atomic_write

    from PIL import Image, ImageDraw

    height, width = frames[0].shape[0] * scale, frames[0].shape[1] * scale
    key = Image.new("RGB", (width, 14 * ((len(COLOUR_KEY) + 1) // 2) + 4), (40, 40, 40))
    draw = ImageDraw.Draw(key)
    for i, (name, colour) in enumerate(COLOUR_KEY):
        x, y = 4 + (i % 2) * width // 2, 4 + (i // 2) * 14
        draw.rectangle((x, y, x + 9, y + 9), fill=tuple(int(255 * c) for c in colour))
        draw.text((x + 14, y - 1), name, fill=(230, 230, 230))
    images = []
    for frame in frames:
        image = Image.new("RGB", (width, height + key.height))
        image.paste(Image.fromarray(frame).resize((width, height), Image.NEAREST), (0, 0))
        image.paste(key, (0, height))
        images.append(image)
    atomic_write(
        path,
        lambda f: images[0].save(
            f, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0
        ),
        binary=True,
    )


def episode_returns(
    policy, mode: str = "regular", num_envs: int = 10, per_env: int = 10, seed: int = 0, frame_cap: int = 1000
) -> np.ndarray:
    """Returns of `policy(observations) -> actions` over the first `per_env` episodes of each of `num_envs`
    environments (counting each env's own episodes keeps short episodes from crowding out long ones)."""
    from functools import partial

    from common.vec_env import make_vec_env

    envs = make_vec_env([partial(MiniPacman, mode, frame_cap) for _ in range(num_envs)], "sync")
    obs, _ = envs.reset(seed=seed)
    running, returns = np.zeros(num_envs), [[] for _ in range(num_envs)]
    while min(len(r) for r in returns) < per_env:
        obs, reward, terminated, truncated, _ = envs.step(policy(obs))
        running += reward
        for i in np.flatnonzero(terminated | truncated):
            returns[i].append(running[i])
            running[i] = 0
    envs.close()
    return np.array([r[:per_env] for r in returns]).ravel()
