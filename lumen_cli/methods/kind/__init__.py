"""KinD (Zhang, Zhang, Guo, ACM MM 2019): nets, pipeline, training."""
