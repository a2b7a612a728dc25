"""Zero/first/alpha-order gradient bench; same as ``fingergym bench gradients``."""
from fingergym.gradients.bench import main

raise SystemExit(main())
