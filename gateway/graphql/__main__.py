"""`python -m gateway.graphql > schema/schema.graphql` regenerates the SDL."""

from gateway.graphql import sdl

print(sdl(), end="")
