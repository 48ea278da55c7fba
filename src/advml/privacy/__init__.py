"""Privacy attacks: membership inference (:mod:`advml.privacy.membership`) and model
inversion (:mod:`advml.privacy.inversion`)."""
