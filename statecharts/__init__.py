"""Charts that ship with chartd, one package each, built on ``engine``'s public API only."""
