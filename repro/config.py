"""Strict configuration dataclasses: a misspelled key is an error, never silently ignored."""

from dataclasses import fields


def choice(name: str, value, valid) -> None:
    """Raise a ValueError naming `name`, the bad `value` and the valid choices."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(repr, valid))}")


class StrictConfig:
    """Mixin for `@dataclass` configs: `from_dict` rejects unknown keys and names the valid ones."""

    @classmethod
    def from_dict(cls, values: dict):
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; valid keys: {known}")
        return cls(**values)
