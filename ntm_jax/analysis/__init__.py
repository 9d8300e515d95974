"""Looking at trained models: pictures (`plots`, `inspection`) and FLOP
counts (`flops`)."""
