"""Training: config -> task + model -> trainer -> MLflow."""
